"""Every checked range as one markdown table: ``python -m mnistlab.config.ranges``."""

from __future__ import annotations

import dataclasses

from mnistlab.config.schema import SCHEMAS
from mnistlab.config.targets import ARGUMENT_RANGES

SIGNS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def describe(bounds: dict[str, float]) -> str:
    """A range as the docs write it: ``0 ≤ x < 1``, ``≥ 1``."""
    low = next(((SIGNS[b].replace("≥", "≤").replace(">", "<"), v) for b, v in bounds.items() if b in ("ge", "gt")), None)
    high = next(((SIGNS[b], v) for b, v in bounds.items() if b in ("le", "lt")), None)
    number = lambda v: f"{int(v):,}" if float(v).is_integer() else f"{v:g}"  # noqa: E731
    if low and high:
        return f"{number(low[1])} {low[0]} x {high[0]} {number(high[1])}"
    sign, value = (SIGNS[next(b for b in bounds if b in ("ge", "gt"))], low[1]) if low else high
    return f"{sign} {number(value)}"


def table() -> str:
    """Every range a config is checked against, as a markdown table of keys that share a range."""
    rows: dict[str, list[str]] = {}

    def add(key: str, bounds: dict[str, float]) -> None:
        rows.setdefault(f"{key.split('.')[0]}|{describe(bounds)}", []).append(f"`{key}`")

    add("seed", {"ge": 0, "lt": 2**32})
    for group, schema in SCHEMAS.items():
        for f in dataclasses.fields(schema):
            nested = f.default_factory if f.default_factory is not dataclasses.MISSING else None
            for inner in dataclasses.fields(nested) if dataclasses.is_dataclass(nested) else [f]:
                if inner.metadata:
                    add(f"{group}.{f.name}.{inner.name}" if inner is not f else f"{group}.{f.name}", dict(inner.metadata))
    for group, arguments in ARGUMENT_RANGES.items():
        for name, bounds in arguments.items():
            add(f"{group}.{name}", bounds)
    lines = ["| key | range |", "|---|---|"]
    lines += [f"| {', '.join(keys)} | {key.split('|', 1)[1]} |" for key, keys in rows.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
