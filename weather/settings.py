"""Settings objects read from the Flask config, all the same way.

weather.config parses and bounds the environment once, at start-up; the
frozen dataclasses that hand those values to the code using them derive from
``FromConfig``: field ``timeout_seconds`` of a class whose prefix is ``KMA_``
is the config key ``KMA_TIMEOUT_SECONDS``, so a setting's name is spelled once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, fields
from typing import Any, ClassVar, Self


class FromConfig:
    """Mixin for a settings dataclass: ``from_config`` fills every field from ``CONFIG_PREFIX + FIELD``.

    Built per request (the ingest's thresholds and window): ``fields`` reads
    the dataclass's own field table, no signature inspection.
    """

    CONFIG_PREFIX: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # set by @dataclass on every subclass

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """The settings from the app's config (keys set by weather.config, so every one is there)."""
        return cls(**{f.name: config[cls.CONFIG_PREFIX + f.name.upper()] for f in fields(cls)})
