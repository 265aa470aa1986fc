"""All configuration, read once from the environment (prefix ``SALESBOT_``) or ``.env``.

This is the only module that reads the environment; everything else takes plain arguments.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TELEGRAM_FIELDS = ("telegram_token",)
WECOM_FIELDS = ("wecom_corp_id", "wecom_secret", "wecom_agent_id", "wecom_token", "wecom_aes_key")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESBOT_", env_file=".env", extra="ignore")

    home: Path = Field(Path(".salesbot"), description="Data directory (SQLite file, embedded Chroma).")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in HOME.")
    chroma_url: str | None = Field(None, description="Chroma server URL; unset = embedded in HOME.")
    embedding_model: str | None = Field(
        None, description="sentence-transformers model path or name; default: the bundled MiniLM."
    )
    org_file: Path | None = Field(None, description="Org YAML loaded by `salesbot demo`.")

    # knowledge base (issue 3)
    embedding_cache: Path | None = Field(
        Path.home() / ".cache" / "salesbot" / "embeddings.sqlite",
        description="SQLite file caching passage vectors by model and text hash; unset = memory only.",
    )
    max_upload_mb: float = Field(20.0, description="Largest document accepted for ingest.")
    chunk_tokens: int = Field(250, description="Passage limit in model tokens (never above the model's).")
    library_weights: dict[str, float] = Field(
        default_factory=lambda: {"policy": 1.0, "literature": 1.0, "sentiment": 1.0, "case": 1.0},
        description="Ranking weight per library (JSON).",
    )
    issuer_weights: dict[str, float] = Field(
        default_factory=dict, description='Ranking weight by issuer substring, e.g. {"卫健委": 0.6} (JSON).'
    )
    dense_weight: float = Field(0.1, description="Dense ranking weight; lexical is 1.0.")
    min_relevance: float = Field(0.55, description="Share of question words a cited passage must hold.")
    history_turns: int = Field(3, description="Questions remembered per user for follow-ups.")

    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint for answer writing.")
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout: float = 20.0

    telegram_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    telegram_webhook_secret: SecretStr | None = None
    telegram_rate_limit: float = Field(25.0, description="Messages/s to Telegram overall (limit is ~30).")

    wecom_corp_id: str | None = None
    wecom_secret: SecretStr | None = None
    wecom_agent_id: str | None = None
    wecom_token: SecretStr | None = None
    wecom_aes_key: SecretStr | None = None
    wecom_api_base_url: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    wecom_rate_limit: float = Field(20.0, description="message/send calls per second to WeCom.")

    public_url: str | None = Field(
        None, description="Public https base URL of `salesbot serve`; set = Telegram webhook registered."
    )
    max_upload_mb: int = Field(20, description="Largest file accepted from chat or the admin API.")
    invite_ttl_hours: int = Field(72, description="How long a /bind code from `users invite` is valid.")

    rules_file: Path | None = Field(None, description="Permission rules YAML; unset = examples/rules.yaml.")
    approval_escalate_after: str = Field("4h", description="Pending approvals escalate, then expire.")
    action_webhook_url: str | None = Field(None, description="Executed actions are POSTed here.")
    # signals (issue 7): journey breakpoints, opportunity health, daily digest
    journey_file: Path | None = Field(None, description="Breakpoint rules; unset = examples/journey.yaml.")
    journey_lateness_seconds: int = Field(300, ge=0, description="How late an event may arrive and count.")
    journey_repeat_days: int = Field(7, ge=1, description="A breakpoint repeated within this many days "
                                     "also alerts the rep's manager.")
    journey_due_every_seconds: int = Field(60, ge=5, description="How often closed windows are decided.")
    health_stage_days: dict[str, int] = Field(
        default_factory=lambda: {"需求确认": 21, "方案评估": 30, "招标准备": 30, "商务谈判": 21},
        description="Typical days per opportunity stage (JSON).")
    health_default_stage_days: int = Field(30, ge=1)
    health_idle_grace_days: int = Field(7, ge=0, description="Days without activity before health drops.")
    health_signal_days: int = Field(30, ge=1, description="How far back notes and tag trends count.")
    health_decay_points: int = Field(10, ge=1, description="A drop this large since yesterday is decay.")
    health_alert_below: int = Field(50, ge=0, le=100, description="Scores below this are always listed.")
    digest_hour: int = Field(8, ge=0, le=23, description="Hour of the daily health digest.")
    digest_timezone: str = "Asia/Shanghai"

    admin_tokens: list[SecretStr] = Field(default_factory=list, description="Bearer tokens for /api/.")

    # policy-triggered pushes (issue 6)
    impact_min_score: float = Field(0.5, description="Score a product match needs to count (0-1).")
    impact_metadata_score: float = Field(0.6, description="Score of products named in metadata.")
    impact_include_won: bool = Field(True, description="Customers with a won opportunity count as affected.")
    push_libraries: list[str] = Field(default_factory=lambda: ["policy", "sentiment"],
                                      description="Libraries whose uploads run impact analysis (JSON).")
    push_batch: int = Field(60, description="Pushes one worker claims at a time (one per recipient).")
    push_idle_seconds: float = Field(0.5, description="How often an idle worker looks for queued pushes.")
    push_lease_seconds: float = Field(300.0, description="A claim older than this returns to the queue.")
    push_max_attempts: int = Field(8, description="Send attempts before a push is marked failed.")
    push_retry_seconds: float = Field(5.0, description="First back-off of a failed push (doubles).")
    push_manager_digest: bool = Field(True, description="Managers get a digest of their team's pushes.")
    log_json: bool = False

    @model_validator(mode="after")
    def _check_channels(self) -> Settings:
        for name, fields in (("Telegram", TELEGRAM_FIELDS), ("WeCom", WECOM_FIELDS)):
            present = [f for f in fields if getattr(self, f)]
            if present and len(present) != len(fields):
                missing = ", ".join(f"SALESBOT_{f.upper()}" for f in fields if f not in present)
                raise SettingsError(f"{name} is partly configured; missing: {missing}")
        try:
            from skills.rules import parse_duration

            parse_duration(self.approval_escalate_after)
        except ValueError as exc:
            raise SettingsError(f"SALESBOT_APPROVAL_ESCALATE_AFTER: {exc}") from None
        if self.wecom_aes_key and len(self.wecom_aes_key.get_secret_value()) != 43:
            raise SettingsError("SALESBOT_WECOM_AES_KEY must be 43 characters (the EncodingAESKey)")
        if self.wecom_agent_id and not self.wecom_agent_id.strip().isdigit():
            raise SettingsError("SALESBOT_WECOM_AGENT_ID must be the app's numeric AgentId")
        token = self.telegram_token.get_secret_value() if self.telegram_token else None
        if token is not None and not re.fullmatch(r"\d+:[\w-]+", token):
            raise SettingsError("SALESBOT_TELEGRAM_TOKEN does not look like a bot token (digits:letters)")
        if self.telegram_webhook_secret and not token:
            raise SettingsError(
                "SALESBOT_TELEGRAM_WEBHOOK_SECRET is set but SALESBOT_TELEGRAM_TOKEN is missing")
        if self.telegram_webhook_secret and not re.fullmatch(
                r"[A-Za-z0-9_-]{8,256}", self.telegram_webhook_secret.get_secret_value()):
            raise SettingsError(
                "SALESBOT_TELEGRAM_WEBHOOK_SECRET must be 8-256 characters of A-Z a-z 0-9 _ -")
        return self

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_token is not None

    @property
    def wecom_enabled(self) -> bool:
        return self.wecom_corp_id is not None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'salesbot.db').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a problem becomes a SettingsError naming the setting."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"SALESBOT_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise SettingsError(problems) from exc
