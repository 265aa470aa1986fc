"""The signals skills' configuration, built from Settings (the only place that reads them)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from bot.settings import Settings
from skills.signals.health import HealthConfig
from skills.signals.journey import JourneyRules, load_journey_rules
from skills.signals.llm_extract import LLMExtractor

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def health_config(settings: Settings) -> HealthConfig:
    return HealthConfig(stage_days=dict(settings.health_stage_days),
                        default_stage_days=settings.health_default_stage_days,
                        idle_grace_days=settings.health_idle_grace_days,
                        signal_days=settings.health_signal_days,
                        decay_points=settings.health_decay_points, alert_below=settings.health_alert_below)


def journey_file(settings: Settings) -> Path:
    return settings.journey_file or EXAMPLES / "journey.yaml"


@cache
def _rules(path: Path, mtime: float) -> JourneyRules:
    return load_journey_rules(path)


def journey_rules(settings: Settings) -> JourneyRules:
    """The breakpoint rules in force (re-read when the file changes; a bad file raises FileInvalid)."""
    path = journey_file(settings)
    return _rules(path, path.stat().st_mtime if path.exists() else 0.0)


def note_extractor(settings: Settings) -> LLMExtractor | None:
    """The LLM note reader when SALESBOT_LLM_BASE_URL and SALESBOT_LLM_MODEL are set."""
    if not (settings.llm_base_url and settings.llm_model):
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    return LLMExtractor(settings.llm_base_url, settings.llm_model, key, settings.llm_timeout)
