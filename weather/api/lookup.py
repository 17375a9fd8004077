"""Finding one row by its id for an endpoint: the row, or the API's 404 naming what was missing."""

from __future__ import annotations

from typing import TypeVar

from models import db
from weather.errors import not_found
from weather.schemas import PG_INT_MAX

Row = TypeVar("Row")


def get_or_404(model: type[Row], ident: int, what: str) -> Row:
    """The ``model`` row with primary key ``ident``, or a 404 on ``what``.

    An id beyond PostgreSQL's integer cannot exist: it is a 404 without asking
    the database (which would answer a driver error, not "absent").
    """
    row = db.session.get(model, ident) if ident <= PG_INT_MAX else None
    if row is None:
        raise not_found(what, ident)
    return row
