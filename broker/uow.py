"""The unit of work: one session, committed once, rolled back by default."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker


class UnitOfWork:
    """`with ctx.uow() as uow: ...; uow.commit()`.

    Leaving the block without `commit()` (or with an exception) rolls back, so a
    service that fails halfway writes nothing. Callbacks registered with
    `after_commit` run only once the commit has succeeded: that is where side
    effects (emails, webhooks out) belong.
    """

    def __init__(self, session_factory: sessionmaker):
        self._session_factory = session_factory
        self.session: Session
        self._after_commit: list = []

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        return self

    def __exit__(self, *exc_info) -> None:
        # close() rolls back whatever was not committed and detaches the objects
        # without expiring them (rollback() would expire them), so a service can
        # return what it read for the caller to serialise.
        self.session.close()

    def commit(self) -> None:
        self.session.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def after_commit(self, callback) -> None:
        self._after_commit.append(callback)
