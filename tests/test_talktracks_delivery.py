"""Issue 6 end to end: an admin uploads a policy in Telegram, the affected reps receive talk tracks
through the fake Bot API (429s, a failing chat, rate limits), press 有用, and the opinion event API."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from sqlmodel import Session, select

from bot.app import App
from bot.handlers_knowledge import register_knowledge
from bot.pushes import after_ingest
from knowledge.service import Knowledge, KnowledgeConfig
from storage.models import Grant, Push, SubjectTags, User
from tests.channel_support import client, eventually, running_bot, settings_for, telegram_settings
from tests.conftest import EXAMPLES
from tests.fakes.telegram_api import FakeTelegramServer

DOCS = EXAMPLES / "knowledge"
TG = {"liumin": 880001, "chenchen": 700301, "liuyang": 700302, "lisi": 700303, "lihua": 700304}
ADMIN = "admin-token-0123456789"


def setup_with(embedder, home: Path):
    def setup(app: App) -> None:
        with Session(app.engine) as session:
            for user_id, chat in TG.items():
                user = session.get(User, user_id)
                assert user is not None
                user.telegram_id = str(chat)
                session.add(user)
            session.commit()
        knowledge = cache(lambda: Knowledge.build(app.engine, KnowledgeConfig(home=home), embedder=embedder))
        register_knowledge(
            app.router, knowledge, on_ingest=lambda result: after_ingest(app.engine, app.settings, result)
        )

    return setup


def pushes(app: App) -> list[Push]:
    with Session(app.engine) as session:
        return list(session.exec(select(Push).order_by(Push.id)))


async def test_upload_to_talk_tracks_over_telegram_with_429_and_a_failing_chat(
    tmp_path: Path, db_url: str, embedder
) -> None:
    async with FakeTelegramServer(token="700999:TEST-token").running() as tg:
        settings = settings_for(
            tmp_path,
            db_url,
            **telegram_settings(tg),
            telegram_rate_limit=30.0,
            push_idle_seconds=0.05,
            push_retry_seconds=0.2,
        )
        async with running_bot(
            settings, setup=setup_with(embedder, tmp_path), retry_window=0.5, max_backoff=0.1
        ) as server:
            app = server.runtime.app
            tg.enforce_rate_limits(global_per_s=30, per_chat_per_s=1)
            tg.fail_next("sendMessage", error_code=429, retry_after=1, chat_id=TG["chenchen"])
            tg.fail_next("sendMessage", error_code=502, times=15, chat_id=TG["liuyang"])  # a failing chat

            drg = (DOCS / "js-drg-2026.md").read_bytes()
            tg.push_document(TG["liumin"], "js-drg-2026.md", drg, "text/markdown", caption="政策")
            await eventually(lambda: len(tg.sent_texts(TG["liumin"])) == 1, timeout=60)
            summary = tg.sent_texts(TG["liumin"])[0]
            assert "影响分析" in summary and "陈晨、刘洋" in summary and "已排队 3 条" in summary
            stent = (DOCS / "nhsa-stent-renewal-2026.md").read_bytes()
            tg.push_document(
                TG["liumin"], "nhsa-stent-renewal-2026.md", stent, "text/markdown", caption="政策"
            )
            await eventually(lambda: len(tg.sent_texts(TG["liumin"])) == 2, timeout=60)
            assert "陈晨、李四" in tg.sent_texts(TG["liumin"])[1]

            await eventually(lambda: all(p.status == "sent" for p in pushes(app)), timeout=30)
            chen = tg.sent_texts(TG["chenchen"])
            assert len(chen) == 2  # nothing doubled despite the 429
            assert "江苏省医疗保障局" in chen[0] and "冠脉支架" in chen[1]  # order kept: DRG first
            assert len(tg.sent_texts(TG["liuyang"])) == 1  # sent after the failures, once
            assert len(tg.sent_texts(TG["lisi"])) == 1
            assert "团队推送汇总" in tg.sent_texts(TG["lihua"])[0]
            assert len(tg.sent_texts(TG["lihua"])) == 2  # one digest per document
            assert tg.sent_texts(700201) == []  # 张三 has no GK/XN opportunity affected
            assert any(f[2] == 429 for f in tg.failures) and sum(f[2] == 502 for f in tg.failures) == 15
            liu = next(p for p in pushes(app) if p.user_id == "liuyang")
            assert liu.attempts >= 2 and liu.status == "sent"

            # the rep rates the talk track
            message = tg.sent_messages(TG["chenchen"])[0]
            data = message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            card = tg.history(TG["chenchen"])[0]["message_id"]
            tg.push_callback(TG["chenchen"], data, card)
            await eventually(lambda: len(tg.sent_texts(TG["chenchen"])) == 3)
            assert "已记录：有用" in tg.sent_texts(TG["chenchen"])[-1]
            rated = next(p for p in pushes(app) if p.user_id == "chenchen")
            assert rated.feedback == "useful" and rated.status == "acknowledged"

            # the same file again: nothing new is pushed
            count = len(pushes(app))
            tg.push_document(TG["liumin"], "js-drg-2026.md", drg, "text/markdown", caption="政策")
            await eventually(lambda: len(tg.sent_texts(TG["liumin"])) == 3, timeout=30)
            assert "不重复推送" in tg.sent_texts(TG["liumin"])[-1]
            assert len(pushes(app)) == count


async def test_a_restart_resumes_unsent_pushes(tmp_path: Path, embedder) -> None:
    from bot.pushes import trigger_document
    from knowledge.impact import ImpactConfig

    async with FakeTelegramServer(token="700999:TEST-token").running() as tg:
        settings = settings_for(tmp_path, **telegram_settings(tg), push_idle_seconds=0.05)
        home = tmp_path
        async with running_bot(settings, setup=setup_with(embedder, home)) as server:
            app = server.runtime.app
            server.runtime.pushes.batch = 0  # this worker claims nothing: the pushes stay queued
            kb = Knowledge.build(app.engine, KnowledgeConfig(home=home), embedder=embedder)
            kb.kb.ingest_bytes(
                "js-drg-2026.md",
                (DOCS / "js-drg-2026.md").read_bytes(),
                __import__("knowledge.base", fromlist=["DocumentMeta"]).DocumentMeta(),
            )
            trigger_document(app.engine, "js-drg-2026", ImpactConfig())
            assert {p.status for p in pushes(app)} == {"queued"}
        assert tg.sent_texts(TG["chenchen"]) == []
        async with running_bot(settings, setup=setup_with(embedder, home)) as server:
            await eventually(lambda: len(tg.sent_texts(TG["chenchen"])) == 1, timeout=15)
            await eventually(lambda: all(p.status == "sent" for p in pushes(server.runtime.app)))


async def test_opinion_event_orange_opens_grants_and_sends_care_packs(tmp_path: Path, db_url: str) -> None:
    async with FakeTelegramServer(token="700999:TEST-token").running() as tg:
        settings = settings_for(tmp_path, db_url, **telegram_settings(tg), push_idle_seconds=0.05)

        def bind(app: App) -> None:
            with Session(app.engine) as session:
                for user_id, chat in TG.items():
                    user = session.get(User, user_id)
                    user.telegram_id = str(chat)  # type: ignore[union-attr]
                    session.add(user)
                session.commit()

        async with running_bot(settings, setup=bind) as server, client(server) as http:
            app = server.runtime.app
            headers = {"Authorization": f"Bearer {ADMIN}"}
            bad = await http.post(
                "/api/events/opinion", json={"level": "purple", "regions": ["江苏"]}, headers=headers
            )
            assert bad.status_code == 422
            event = {
                "event_id": "yq-017",
                "level": "orange",
                "regions": ["江苏"],
                "keywords": ["接骨板", "钢板断了"],
                "title": "江苏网友称术后钢板断裂",
                "facts": ["涉事品牌未确认，我司产品近 6 个月未向该医院供货"],
            }
            response = await http.post("/api/events/opinion", json=event, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()["result"]
            assert body["products"] == ["GK-TR01"] and sorted(body["reps"]) == ["chenchen"]
            assert body["grants_opened"] >= 3  # opinion-orange: every 江苏 rep, through the engine
            with Session(app.engine) as session:
                tags = session.get(SubjectTags, ("region", "江苏"))
                assert tags is not None and tags.tags["opinion_level"] == "orange"
                grants = session.exec(select(Grant).where(Grant.rule_id == "opinion-orange")).all()
                assert {g.user_id for g in grants} >= {"chenchen", "liuyang", "sunyue"}
            await eventually(
                lambda: any("舆情关怀包" in t for t in tg.sent_texts(TG["chenchen"])), timeout=15
            )
            pack = next(t for t in tg.sent_texts(TG["chenchen"]) if "舆情关怀包" in t)
            assert "免费维修/换新" in pack and "江苏省人民医院" in pack and "统一口径" in pack
            again = await http.post("/api/events/opinion", json=event, headers=headers)
            assert again.json()["result"]["care_packs"] == 0  # the same event twice: no second pack
            calm = await http.post(
                "/api/events/opinion", json={"level": "blue", "regions": ["江苏"]}, headers=headers
            )
            assert (
                calm.status_code == 200 and calm.json()["result"]["care_packs"] == 0
            )  # below orange: no pack
            with Session(app.engine) as session:
                assert session.get(SubjectTags, ("region", "江苏")).tags["opinion_level"] == "blue"  # type: ignore


async def test_wecom_split_talk_tracks_survive_45009_without_doubling_a_part(
    tmp_path: Path, embedder
) -> None:
    from bot.pushes import trigger_document
    from knowledge.base import DocumentMeta
    from knowledge.impact import ImpactConfig
    from tests.channel_support import AGENT_ID, CORP_ID, WECOM_SECRET, wecom_settings
    from tests.fakes.wecom_api import FakeWeComServer

    async with FakeWeComServer(CORP_ID, WECOM_SECRET, agent_id=AGENT_ID).running() as wc:
        settings = settings_for(
            tmp_path, **wecom_settings(wc), push_idle_seconds=0.05, push_retry_seconds=0.1
        )
        async with running_bot(settings, retry_window=0.3, max_backoff=0.05) as server:
            app = server.runtime.app
            kb = Knowledge.build(app.engine, KnowledgeConfig(home=tmp_path), embedder=embedder)
            kb.kb.ingest_bytes("js-drg-2026.md", (DOCS / "js-drg-2026.md").read_bytes(), DocumentMeta())
            wc.fail_next("message/send", errcode=45009, times=12)  # past the delivery's retry window
            trigger_document(app.engine, "js-drg-2026", ImpactConfig())
            await eventually(lambda: all(p.status == "sent" for p in pushes(app)), timeout=30)
            for user in ("ChenChen", "LiuYang"):
                texts = wc.sent_texts(user)
                assert len(texts) >= 2  # over 2048 bytes: split in parts
                assert sum("【政策话术包】" in t for t in texts) == 1  # no part sent twice
                assert len(wc.sent_cards(user)) <= 1
            assert any(p.attempts >= 2 for p in pushes(app))
