"""Settings objects read from the Flask config, all the same way.

weather.config parses and bounds the environment once, at start-up; the
frozen dataclasses that hand those values to the code using them derive from
``FromConfig``: field ``timeout_seconds`` of a class whose prefix is ``KMA_``
is the config key ``KMA_TIMEOUT_SECONDS``, so a setting's name is spelled once.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar, Self


class FromConfig:
    """Mixin for a settings dataclass: ``from_config`` fills every field from ``CONFIG_PREFIX + FIELD``."""

    CONFIG_PREFIX: ClassVar[str]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """The settings from the app's config (keys set by weather.config, so every one is there)."""
        names = inspect.signature(cls).parameters
        return cls(**{name: config[cls.CONFIG_PREFIX + name.upper()] for name in names})
