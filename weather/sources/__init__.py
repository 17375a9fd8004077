"""The forecast sources, one module each, found by name: ``flask forecasts fetch --product NAME``.

Each module in this package defines ``PRODUCT`` (its name), ``SUMMARY`` (one
line for the help) and ``source(config)`` (a weather.forecast_source.ForecastSource
built from the app's config). Adding a source means adding one module here;
the pipeline (weather.forecast_fetch) never imports any of them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from types import ModuleType
from typing import Any

from weather.forecast_source import ForecastSource


@cache
def _modules() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.PRODUCT] = module
    return found


def products() -> dict[str, str]:
    """Every product's name and one-line summary, in name order."""
    return {name: module.SUMMARY for name, module in sorted(_modules().items())}


def source_for(product: str, config: Mapping[str, Any]) -> ForecastSource:
    """The source named ``product``, built from ``config``; KeyError for an unknown name."""
    source: ForecastSource = _modules()[product].source(config)
    return source
