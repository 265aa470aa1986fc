"""Who is talking: map a chat account on a channel to an org user."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage.models import User


class Directory:
    """Looks up org users; the terminal channel uses the org id itself as its account."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def resolve(self, channel: str, account: str) -> User | None:
        with Session(self.engine) as session:
            if channel == "terminal":
                return session.get(User, account)
            column = {"telegram": User.telegram_id, "wecom": User.wecom_userid}.get(channel)
            if column is None:
                return None
            return session.exec(select(User).where(column == account)).first()

    def get(self, user_id: str) -> User | None:
        with Session(self.engine) as session:
            return session.get(User, user_id)

    def all_ids(self) -> list[str]:
        with Session(self.engine) as session:
            return list(session.exec(select(User.id).order_by(User.id)))
