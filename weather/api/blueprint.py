"""The flask-smorest Blueprint every API module uses: a JSON parser that never crashes on hostile bodies."""

from __future__ import annotations

from typing import Any

import flask
import flask_smorest
import marshmallow
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType


class HostileJsonParser(FlaskParser):
    """webargs' parser with its own ``load_json``: a body that is not JSON is a 400 (415 when labelled otherwise).

    ``load_json`` is the public location loader webargs documents for parsers
    that read JSON their own way. Besides syntax errors and invalid UTF-8,
    Python's decoder raises RecursionError on deeply nested arrays or objects
    and ValueError on integers longer than ``sys.get_int_max_str_digits()``.
    A chunked body (no Content-Length) is cut by werkzeug at MAX_CONTENT_LENGTH
    without an error; one that reaches the limit is answered 413, not parsed.
    A body labelled as something else (text/plain, a form) is a 415 before it
    is read: the client sent the wrong thing, not a JSON object missing fields.

    Unknown query parameters are refused like unknown body fields (webargs
    ignores them by default): ``?markt_id=1`` must not quietly list every market's alarms.
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": marshmallow.RAISE,
        "querystring": marshmallow.RAISE,
    }

    def load_json(self, req: flask.Request, schema: Schema) -> Any:
        if not is_json_request(req):
            if req.mimetype or req.content_length or req.headers.get("Transfer-Encoding"):
                raise UnsupportedMediaType("The request body must be JSON: send Content-Type: application/json.")
            return core.missing  # no body at all: the schema names its required fields
        body = req.get_data(cache=True)
        limit = req.max_content_length
        if req.content_length is None and limit is not None and len(body) >= limit:
            raise RequestEntityTooLarge()
        if not body:
            return core.missing  # an empty body counts as missing, as in webargs
        try:
            return core.parse_json(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            abort(400, exc=exc, messages={"json": ["Invalid JSON body."]})


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the hostile-input-safe JSON parser."""

    ARGUMENTS_PARSER = HostileJsonParser()
