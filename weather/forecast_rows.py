"""Forecast rows checked fast, by the rules of their marshmallow schema, and the sanity window around now.

A bulk ingest carries up to tens of thousands of rows; loading each through
marshmallow costs far more than storing it. ``RowChecker`` reads the rules
once from the row schema's fields (required, nullable, integer or float or
aware date-time, ``Range`` bounds, extra validators) and applies them with
plain comparisons. A row it cannot accept on that fast path is loaded by the
schema itself: it is either accepted (e.g. a number sent as a string, which
marshmallow converts) or rejected with marshmallow's own messages. The
schema stays the one definition of a valid row, and of the OpenAPI document.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, missing, validate

from weather.settings import FromConfig

# The problems of this many rejected rows are kept: enough to fix them, small to answer.
MAX_REPORTED_ROWS = 10

_MISSING = object()


@dataclass(frozen=True)
class ForecastWindow(FromConfig):
    """Forecast times must lie within ``max_past_days`` before and ``max_future_days`` after now.

    Bounds a forecast to the times a forecast can be about: year 1, 1900 or
    9999 is a client's bug, not weather, and must never raise an alarm.
    """

    CONFIG_PREFIX = "FORECAST_"

    max_past_days: float = 366.0
    max_future_days: float = 31.0

    def bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """The [earliest, latest] forecast times accepted at ``now`` (default: the current time)."""
        now = now or datetime.now(UTC)
        return now - timedelta(days=self.max_past_days), now + timedelta(days=self.max_future_days)

    def problem(self) -> str:
        """The message for a forecast time outside the window."""
        return f"Must lie within {self.max_past_days:g} days before and {self.max_future_days:g} days after now."


@dataclass(frozen=True)
class _Rule:
    name: str
    kind: str  # "int" | "float" | "datetime" | "other" (always loaded by the schema)
    required: bool
    allow_none: bool
    low: float | None
    high: float | None
    validators: tuple[Callable[[Any], Any], ...]


def _rule(name: str, schema_field: fields.Field) -> _Rule:
    if isinstance(schema_field, fields.Integer) and schema_field.strict:
        kind = "int"
    elif isinstance(schema_field, fields.Float) and not schema_field.allow_nan:
        kind = "float"
    elif isinstance(schema_field, fields.AwareDateTime) and schema_field.format in (None, "iso", "iso8601"):
        kind = "datetime"
    else:
        kind = "other"
    low = high = None
    others: list[Callable[[Any], Any]] = []
    for validator in schema_field.validators:
        if isinstance(validator, validate.Range) and validator.min_inclusive and validator.max_inclusive:
            low, high = validator.min, validator.max
        else:
            others.append(validator)
    if schema_field.load_default is not None and schema_field.load_default is not missing:
        kind = "other"  # a default other than None: let the schema fill it in
    return _Rule(name, kind, schema_field.required, schema_field.allow_none, low, high, tuple(others))


@dataclass
class CheckedRows:
    """The rows that passed, and the problems of the first rejected ones (row index -> field -> messages)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[int, Any] = field(default_factory=dict)
    rejected: int = 0


class RowChecker:
    """Checks many rows by the rules of ``schema_class``; ``window_field`` must lie in a ForecastWindow."""

    def __init__(self, schema_class: type[Schema], window_field: str) -> None:
        self.schema = schema_class()
        self.window_field = window_field
        self.rules = tuple(
            _rule(name, schema_field)
            for name, schema_field in self.schema.load_fields.items()
            if schema_field.data_key in (None, name)
        )
        self.names = frozenset(rule.name for rule in self.rules)
        if len(self.rules) != len(self.schema.load_fields):
            raise TypeError(f"{schema_class.__name__}: fields with a data_key are not supported")

    def check(
        self, rows: Sequence[Any], window: ForecastWindow, *, now: datetime | None = None, stop_after: int = 0
    ) -> CheckedRows:
        """Check every row; stop after ``stop_after`` rejected rows (0: check them all, to skip the bad ones)."""
        earliest, latest = window.bounds(now)
        result = CheckedRows()
        for index, row in enumerate(rows):
            checked = self._fast(row)
            if checked is None:
                try:
                    checked = self.schema.load(row)
                except ValidationError as exc:
                    result.rejected += 1
                    if len(result.errors) < MAX_REPORTED_ROWS:
                        result.errors[index] = exc.messages
                    if stop_after and result.rejected >= stop_after:
                        break
                    continue
            moment = checked.get(self.window_field)
            if moment is not None and not earliest <= moment <= latest:
                result.rejected += 1
                if len(result.errors) < MAX_REPORTED_ROWS:
                    result.errors[index] = {self.window_field: [window.problem()]}
                if stop_after and result.rejected >= stop_after:
                    break
                continue
            result.rows.append(checked)
        return result

    def _fast(self, row: Any) -> dict[str, Any] | None:
        """The checked row, or None when only the schema can tell (then it loads the row)."""
        if type(row) is not dict or not row.keys() <= self.names:
            return None
        out: dict[str, Any] = {}
        for rule in self.rules:
            value = row.get(rule.name, _MISSING)
            if value is _MISSING:
                if rule.required:
                    return None
                out[rule.name] = None
                continue
            if value is None:
                if not rule.allow_none:
                    return None
                out[rule.name] = None
                continue
            kind = rule.kind
            if kind == "int":
                if type(value) is not int:
                    return None
            elif kind == "float":
                if type(value) is int:
                    if abs(value) > 2**53:
                        return None
                    value = float(value)
                elif type(value) is not float or not math.isfinite(value):
                    return None
            elif kind == "datetime":
                if type(value) is not str:
                    return None
                try:
                    parsed = datetime.fromisoformat(value)
                    if parsed.utcoffset() is None:
                        return None
                    value = parsed.astimezone(UTC)
                except (ValueError, OverflowError):
                    return None
            else:
                return None
            if (rule.low is not None and value < rule.low) or (rule.high is not None and value > rule.high):
                return None
            for validator in rule.validators:
                try:
                    validator(value)
                except ValidationError:
                    return None
            out[rule.name] = value
        return out
