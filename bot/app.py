"""Wires the pieces together from Settings: database, directory, router and its handlers."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from bot.api import ApiHooks
from bot.binding import register_binding
from bot.commands import register_basic
from bot.handlers_actions import register_actions
from bot.handlers_knowledge import knowledge_factory, register_knowledge
from bot.handlers_signals import register_signals
from bot.identity import Directory
from bot.router import Router
from bot.settings import Settings
from bot.signals_config import health_config, note_extractor
from knowledge.service import Knowledge
from skills.signals.tags import tag_hooks
from storage.db import create_schema, make_engine


@dataclass
class App:
    settings: Settings
    engine: Engine
    directory: Directory
    router: Router
    actions: Any = None  # skills.actions.ActionService: the scheduler calls .process_due_approvals(now)
    api: ApiHooks = field(default_factory=ApiHooks)  # admin API extension points
    knowledge: Callable[[], Knowledge] | None = None  # built on first use


def build_app(settings: Settings) -> App:
    """Everything the channels need; creates the data directory and the schema on first start."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub at run time
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    create_schema(engine)
    directory = Directory(engine)
    router = Router(directory)
    register_basic(router)
    register_binding(router, engine)
    actions = register_actions(router, settings, engine)
    knowledge = knowledge_factory(settings, engine)
    from bot.pushes import after_ingest

    register_knowledge(router, knowledge, on_ingest=lambda result: after_ingest(engine, settings, result))
    register_signals(router, engine, health_config(settings), note_extractor(settings))
    # a note or an event that changes tags re-runs the permission rules in the same transaction
    tag_hooks.register_in_transaction(actions.on_tag_changes, bind=engine, key="permissions")
    application = App(settings=settings, engine=engine, directory=directory, router=router, actions=actions,
                      knowledge=knowledge)
    from bot.jobs_signals import register_event_api  # it imports App

    register_event_api(application)
    from bot.pushes import register_pushes

    register_pushes(application)
    return application
