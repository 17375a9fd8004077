"""The flask-smorest Blueprint every API module uses: a JSON parser that never crashes on hostile bodies."""

from __future__ import annotations

import json
from typing import Any

import flask
import flask_smorest
from webargs.flaskparser import FlaskParser


class HostileJsonParser(FlaskParser):
    """webargs' parser, with every undecodable JSON body answered 400 (never a 500).

    webargs turns syntax errors and invalid UTF-8 into a 400 itself; Python's
    decoder also raises RecursionError on deeply nested arrays or objects and
    ValueError on integers longer than ``sys.get_int_max_str_digits()``.
    """

    def _raw_load_json(self, req: flask.Request) -> Any:
        try:
            return super()._raw_load_json(req)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise  # load_json handles these (an empty body counts as missing)
        except (RecursionError, ValueError) as exc:
            # The hook takes a decode error: this body is one, whichever error the decoder raised.
            undecodable = json.JSONDecodeError(f"undecodable JSON body ({type(exc).__name__})", "", 0)
            return self._handle_invalid_json_error(undecodable, req)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the hostile-input-safe JSON parser."""

    ARGUMENTS_PARSER = HostileJsonParser()
