from __future__ import annotations

import dataclasses
from typing import Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class PageRequest:
    page: int = 1
    page_size: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    # False when `total` is a lower bound: there are at least that many (the
    # board stops counting at `Settings.board_count_limit`).
    exact: bool = True


def paginate(session: Session, stmt: Select, request: PageRequest, *, rows: bool = False) -> Page:
    """One page of `stmt` and the total count. `rows=True` keeps whole rows
    (for a select of several entities); otherwise the first column of each."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    window = stmt.limit(request.page_size).offset(request.offset)
    items = list(session.execute(window).all() if rows else session.scalars(window))
    return Page(items, total)
