"""Numeric ranges: a dataclass field that carries its bounds, and the check that names the key that breaks them."""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import field
from typing import Any, ClassVar

from mnistlab.errors import ConfigError

BOUNDS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "le": (operator.le, "<="), "lt": (operator.lt, "<")}


def ranged(default: Any = None, **bounds: float) -> Any:
    """A field with bounds checked after composing: ``ge``, ``gt``, ``le``, ``lt`` (``None`` always passes)."""
    return field(default=default, metadata=bounds)


def check_bounds(key: str, value: Any, bounds: dict[str, float]) -> None:
    """Raise ConfigError naming ``key`` unless ``value`` (a number, or each number of a list) is within ``bounds``."""
    for item in value if isinstance(value, list | tuple) else [value]:
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(f"{key} must be a number, got {item!r}")
        for bound, limit in bounds.items():
            test, sign = BOUNDS[bound]
            if math.isnan(item) or not test(item, limit):
                raise ConfigError(f"{key} must be {sign} {limit:g}, got {item}")


class Checked:
    """Checks each field's bounds on construction; errors name the key as ``<KEY>.<field>``."""

    KEY: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.metadata:
                check_bounds(f"{self.KEY}.{f.name}", getattr(self, f.name), dict(f.metadata))
