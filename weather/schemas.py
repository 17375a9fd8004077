"""Marshmallow schemas: they validate every input and generate the OpenAPI document.

Input schemas raise on unknown fields (marshmallow's default), so a typo in a
field name is reported instead of silently ignored. Every list is bounded and
its length checked before any item is read; a body never costs more than its
bounded size, and an error answer names only the first few problems.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping, Sized
from typing import Any, cast

from flask import current_app, has_app_context
from marshmallow import Schema, ValidationError, fields, pre_load, utils, validate, validates_schema

from models import ALARM_TYPES, PLATFORMS
from weather.cursor import MAX_CURSOR_LENGTH, InvalidCursor, read_cursor
from weather.forecast_rows import MAX_REPORTED_ROWS, ForecastWindow, RowChecker
from weather.times import API_EARLIEST, API_LATEST, within_api_window

PG_INT_MAX = 2**31 - 1  # ids are PostgreSQL integers; larger values must be a 422, not a driver error
MAX_PAGE_SIZE = 500
MAX_FORECASTS_PER_REQUEST = 20_000
MAX_SUBSCRIPTIONS = 1000
MAX_PUSH_TOKEN_LENGTH = 255
# A list stops reading items after this many bad ones, and a body after this many unknown fields:
# the client learns what is wrong, and a hostile body cannot make the answer (or the work) large.
MAX_REPORTED_ERRORS = 5


# Unicode categories refused in text: control (Cc: NUL, tab, escape ...) and format
# (Cf: zero-width space, joiners, bidirectional overrides such as U+202E). They are
# invisible, so "광장시장" and "광장시장\u200b" would be two markets a person cannot tell apart.
REFUSED_CATEGORIES = {"Cc": "control", "Cf": "format"}


def _storable(value: str) -> None:
    # A lone surrogate (JSON "\ud800") is not UTF-8 at all: reject it here rather than
    # fail in the driver. NUL (which PostgreSQL text cannot hold) is a control character.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid Unicode (no unpaired surrogates).") from None
    for char in value:
        kind = REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind:
            raise ValidationError(f"Must not contain {kind} characters (found U+{ord(char):04X}).")


class CleanText(fields.String):
    """A string in one canonical spelling: NFC-normalised and stripped of surrounding whitespace.

    "광장시장" typed on macOS arrives decomposed (NFD), on Windows composed
    (NFC): both must be the same market, so uniqueness and lookups compare the
    normalised form. Validators (length, _storable) see the normalised value.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        return unicodedata.normalize("NFC", text).strip()


def Text(max_length: int, **kwargs: Any) -> fields.String:
    """Clean text of 1..max_length characters that PostgreSQL can store: every free-text input field."""
    return CleanText(validate=[validate.Length(min=1, max=max_length), _storable], **kwargs)


def Id(**kwargs: Any) -> fields.Integer:
    """A positive database id."""
    return fields.Integer(validate=validate.Range(min=1, max=PG_INT_MAX), **kwargs)


class UTCDateTime(fields.AwareDateTime):
    """ISO 8601 with an offset on input (naive times are ambiguous: refused); UTC on output.

    Input lies in weather.times' API window (1970 to 2100): year 1 or 9999 with
    an offset would overflow on conversion, and no real time is that far out.
    """

    default_error_messages = {
        "out_of_range": f"Must be from {API_EARLIEST.isoformat()} to before {API_LATEST.isoformat()}."
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = parsed.astimezone(dt.UTC)  # AwareDateTime: never naive
        except OverflowError:
            raise self.make_error("out_of_range") from None
        if not within_api_window(moment):
            raise self.make_error("out_of_range")
        return moment

    def _serialize(self, value: dt.datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | float | None:
        return super()._serialize(value, attr, obj, **kwargs)  # aware UTC on every database (models.UTCDateTime)


class Cursor(fields.Field[list[Any]]):
    """A signed keyset cursor (weather/cursor.py, a string), decoded to its sort key of ``parts`` values."""

    def __init__(self, parts: int, **kwargs: Any) -> None:
        metadata = {"type": "string", "maxLength": MAX_CURSOR_LENGTH, "description": "next_cursor of the previous page"}
        super().__init__(metadata=metadata, **kwargs)
        self.parts = parts
        self._token = fields.String(validate=validate.Length(max=MAX_CURSOR_LENGTH))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        token = self._token.deserialize(value)
        try:
            return read_cursor(token, self.parts)
        except InvalidCursor as exc:
            raise ValidationError(str(exc)) from None


class BoundedList(fields.List):
    """A list of ``min_length``..``max_length`` items, its length checked before any item is read.

    marshmallow's List deserialises every item before its Length validator
    runs, so an oversized list costs time in proportion to its size; this one
    refuses it first, and stops after MAX_REPORTED_ERRORS bad items.
    """

    def __init__(self, inner: fields.Field, *, max_length: int, min_length: int = 0, **kwargs: Any) -> None:
        self.length = validate.Length(min=min_length, max=max_length)
        # Also a validator, so the OpenAPI document shows minItems/maxItems.
        super().__init__(inner, validate=self.length, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not utils.is_collection(value):
            raise self.make_error("invalid")
        self.length(cast(Sized, value))  # a JSON array: a list
        result: list[Any] = []
        errors: dict[int, Any] = {}
        for index, item in enumerate(value):
            try:
                result.append(self.inner.deserialize(item, **kwargs))
            except ValidationError as error:
                errors[index] = error.messages
                if len(errors) >= MAX_REPORTED_ERRORS:
                    break
        if errors:
            raise ValidationError(errors)
        return result


class InputSchema(Schema):
    """A request body: unknown fields refused in one pass, naming only the first few.

    marshmallow would record an error per unknown field (a body of 300,000 of
    them made an 8 MB answer); this check runs before any field is read.
    """

    @pre_load
    def _refuse_unknown_fields(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            return data  # marshmallow reports "Invalid input type."
        known = {field.data_key or name for name, field in self.fields.items() if not field.dump_only}
        unknown = [key for key in data if key not in known]
        if unknown:
            errors: dict[str, list[str]] = {str(key): ["Unknown field."] for key in unknown[:MAX_REPORTED_ERRORS]}
            if len(unknown) > MAX_REPORTED_ERRORS:
                errors["_schema"] = [f"{len(unknown)} unknown fields; the first {MAX_REPORTED_ERRORS} are named."]
            raise ValidationError(errors)
        return data


def _limit() -> fields.Integer:
    return fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


class TimeRangeMixin(Schema):
    start = UTCDateTime(metadata={"description": "inclusive lower bound"})
    end = UTCDateTime(metadata={"description": "exclusive upper bound"})

    @validates_schema
    def _start_before_end(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise ValidationError("Must be later than start.", "end")


# --- errors ---------------------------------------------------------------------


class ErrorSchema(Schema):
    """The one JSON error body (weather/errors.py), documented for every operation."""

    error = fields.String(required=True, metadata={"description": "code word, e.g. unprocessable_entity"})
    message = fields.String(required=True, metadata={"description": "one sentence for a person"})
    status = fields.Integer(required=True, metadata={"description": "the HTTP status again"})
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "problems per input field (dotted path for nested input)"},
    )


# --- markets -----------------------------------------------------------------


class MarketCreateSchema(InputSchema):
    name = Text(100, required=True)
    region = Text(50, required=True, metadata={"example": "서울"})
    address = Text(255, allow_none=True, load_default=None)
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90, min_inclusive=False))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))


class MarketUpdateSchema(InputSchema):
    name = Text(100)
    region = Text(50)
    address = Text(255, allow_none=True)
    latitude = fields.Float(validate=validate.Range(min=-90, max=90, min_inclusive=False))
    longitude = fields.Float(validate=validate.Range(min=-180, max=180))


class MarketSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    region = fields.String()
    address = fields.String(allow_none=True)
    latitude = fields.Float()
    longitude = fields.Float()
    grid_nx = fields.Integer(metadata={"description": "KMA forecast grid x, from latitude/longitude"})
    grid_ny = fields.Integer(metadata={"description": "KMA forecast grid y, from latitude/longitude"})
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class MarketQuerySchema(Schema):
    region = Text(50)
    limit = _limit()
    cursor = Cursor(1)


def page_schema(items: type[Schema]) -> type[Schema]:
    """The one page shape of every list endpoint: ``items``, and ``next_cursor`` (null on the last page)."""
    fields_of_page: dict[str, fields.Field] = {
        "items": fields.List(fields.Nested(items)),
        "next_cursor": fields.String(allow_none=True),
    }
    return Schema.from_dict(fields_of_page, name=items.__name__.replace("Schema", "PageSchema"))


MarketPageSchema = page_schema(MarketSchema)


# --- devices and subscriptions ------------------------------------------------


class DeviceRegisterSchema(InputSchema):
    push_token = Text(MAX_PUSH_TOKEN_LENGTH, required=True)
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))


class SubscriptionSchema(InputSchema):
    market_id = Id(required=True, strict=True)
    alarm_types = BoundedList(
        fields.String(validate=validate.OneOf(ALARM_TYPES)), required=True, min_length=1, max_length=len(ALARM_TYPES)
    )


class SubscriptionsReplaceSchema(InputSchema):
    subscriptions = BoundedList(fields.Nested(SubscriptionSchema), required=True, max_length=MAX_SUBSCRIPTIONS)


class DeviceSchema(Schema):
    # The push token is not echoed: the client has it, and responses end up in logs.
    id = fields.Integer()
    platform = fields.String()
    created_at = UTCDateTime()
    last_seen_at = UTCDateTime()
    subscriptions = fields.List(fields.Nested(SubscriptionSchema))


# --- forecasts ------------------------------------------------------------------


def _measure(low: float, high: float, description: str, *, integer: bool = False) -> fields.Field:
    kind: Any = fields.Integer if integer else fields.Float
    extra = {"strict": True} if integer else {}
    return kind(
        validate=validate.Range(min=low, max=high),
        allow_none=True,
        load_default=None,
        metadata={"description": description},
        **extra,
    )


class ForecastInSchema(Schema):
    market_id = Id(required=True, strict=True)
    forecast_time = UTCDateTime(required=True)
    temperature = _measure(-90, 70, "°C")
    precipitation_probability = _measure(0, 100, "%", integer=True)
    precipitation_mm = _measure(0, 1000, "mm in the hour")
    snowfall_cm = _measure(0, 1000, "cm in the hour")
    wind_speed = _measure(0, 150, "m/s")
    sky_code = _measure(1, 4, "KMA SKY code: 1 clear, 3 mostly cloudy, 4 overcast", integer=True)


# The one check of forecast rows, for the API and the KMA fetcher alike.
FORECAST_ROWS = RowChecker(ForecastInSchema, window_field="forecast_time")


class ForecastRows(fields.List):
    """A list of ForecastInSchema rows, checked by FORECAST_ROWS: the schema's rules without a
    schema load per row, and forecast times inside the app's ForecastWindow.

    Documented in OpenAPI as the plain list of ForecastIn it is; a bad batch is a
    422 naming ``forecasts.<index>.<field>`` for its first rejected rows.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.Nested(ForecastInSchema), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        for validator in self.validators:  # the length bound, before any row is looked at
            validator(value)
        window = ForecastWindow.from_config(current_app.config) if has_app_context() else ForecastWindow()
        checked = FORECAST_ROWS.check(value, window, stop_after=MAX_REPORTED_ROWS)
        if checked.errors:
            raise ValidationError(checked.errors)
        return checked.rows


class ForecastBatchSchema(Schema):
    forecasts = ForecastRows(required=True, validate=validate.Length(min=1, max=MAX_FORECASTS_PER_REQUEST))


class ForecastSchema(ForecastInSchema):
    forecast_time = UTCDateTime()
    updated_at = UTCDateTime()


class ForecastQuerySchema(TimeRangeMixin):
    market_id = Id(required=True)
    limit = _limit()
    cursor = Cursor(1)


ForecastPageSchema = page_schema(ForecastSchema)


# --- alarm logs -------------------------------------------------------------------


class AlarmLogSchema(Schema):
    id = fields.Integer()
    market_id = fields.Integer()
    alarm_type = fields.String()
    target_date = fields.Date(metadata={"description": "the day (in Korea) the alarm is about"})
    title = fields.String()
    message = fields.String()
    created_at = UTCDateTime()
    sent_to_devices = fields.Integer(metadata={"description": "deliveries the push provider accepted"})
    pending_deliveries = fields.Integer(metadata={"description": "deliveries not sent yet (waiting or retrying)"})
    failed_deliveries = fields.Integer(metadata={"description": "deliveries given up (see the push worker log)"})


class IngestResultSchema(Schema):
    upserted = fields.Integer(metadata={"description": "forecast rows inserted or updated"})
    alarms = fields.List(fields.Nested(AlarmLogSchema), metadata={"description": "alarms raised by this ingest"})


class AlarmLogQuerySchema(TimeRangeMixin):
    market_id = Id()
    alarm_type = fields.String(validate=validate.OneOf(ALARM_TYPES))
    limit = _limit()
    cursor = Cursor(2)


AlarmLogPageSchema = page_schema(AlarmLogSchema)
