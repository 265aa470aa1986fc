"""Events over the admin API reach the permission rules and the people concerned, over Telegram."""

from __future__ import annotations

from pathlib import Path

from tests.channel_support import (
    ADMIN_TOKEN,
    ZHANGSAN_TG,
    client,
    eventually,
    running_bot,
    settings_for,
    telegram_settings,
)
from tests.conftest import EXAMPLES
from tests.fakes.telegram_api import FakeTelegramServer

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_crm_event_opens_a_grant_and_the_rep_is_told_on_telegram(tmp_path: Path) -> None:
    async with FakeTelegramServer(token="700999:TEST-token").running() as tg:
        settings = settings_for(tmp_path, rules_file=EXAMPLES / "rules.yaml", **telegram_settings(tg))
        async with running_bot(settings) as server, client(server) as http:
            event = {"event_id": "crm-1", "customer": "bj-xiehe", "tags": {"competitor_views": 6},
                     "source": "crm"}
            resp = await http.post("/api/events/tags", json=event, headers=AUTH)
            assert resp.status_code == 200, resp.text
            assert resp.json()["result"]["changes"] == [
                {"customer": "bj-xiehe", "tag": "competitor_views", "old": 1, "new": 6}]
            await eventually(lambda: any("competitor-price" in t for t in tg.sent_texts(ZHANGSAN_TG)))

            again = await http.post("/api/events/tags", json=event, headers=AUTH)
            assert again.json()["result"]["status"] == "duplicate"
            bad = await http.post("/api/events/tags", json={"event_id": "x", "customer": "nowhere",
                                                            "tags": {"nps": 1}}, headers=AUTH)
            assert bad.status_code == 422 and "nowhere" in bad.text
            assert len([t for t in tg.sent_texts(ZHANGSAN_TG) if "competitor-price" in t]) == 1


async def test_journey_events_over_the_api(tmp_path: Path) -> None:
    import json

    lines = (EXAMPLES / "journey_events.jsonl").read_text("utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    async with running_bot(settings_for(tmp_path)) as server, client(server) as http:
        resp = await http.post("/api/events/journey", json={"events": events, "source": "web"}, headers=AUTH)
        assert resp.status_code == 200, resp.text
        first = resp.json()["result"]
        assert first["accepted"] == len(events) and first["rejected"] == []
        replay = await http.post("/api/events/journey", json={"events": events}, headers=AUTH)
        assert replay.json()["result"]["duplicates"] == len(events)
        assert replay.json()["result"]["breakpoints"] == []
        assert (await http.post("/api/events/journey", json={"nope": 1}, headers=AUTH)).status_code == 422
