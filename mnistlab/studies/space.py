"""A study's search space: Hydra's sweep syntax (``interval``, ``range``, ``choice``, ``tag(log, ...)``) as Optuna's
distributions, and sampled values as command-line overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mnistlab.errors import UserError

if TYPE_CHECKING:
    import optuna


def distribution(key: str, text: str) -> optuna.distributions.BaseDistribution | None:
    """Hydra's sweep syntax as an Optuna distribution: ``interval(a, b)`` (float; ``tag(int, ...)`` for an int),
    ``range(a, b[, step])`` (int, b excluded), ``choice(...)``, each optionally ``tag(log, ...)``; None for a fixed value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from hydra.errors import OverrideParseException
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    try:
        override = OverridesParser.create().parse_overrides([f"{key}={text}"])[0]
    except OverrideParseException as err:
        raise UserError(f"hydra.sweeper.params.{key}: cannot read {text!r}: {err}") from None
    if not override.is_sweep_override():
        return None
    sweep, log_scale = override.value(), "log" in (override.value().tags or set())
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(list(sweep.list))
    if isinstance(sweep, RangeSweep):
        start, step = int(sweep.start), 1 if log_scale else int(sweep.step)
        last = start + (int(sweep.stop) - 1 - start) // step * step  # range's stop is excluded
        return IntDistribution(start, last, log=log_scale, step=step)
    if isinstance(sweep, IntervalSweep):
        if "int" in sweep.tags:
            return IntDistribution(int(sweep.start), int(sweep.end), log=log_scale)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
    raise UserError(f"hydra.sweeper.params.{key}: {text!r} is not interval(...), range(...) or choice(...)")


def search_space(params: Mapping[str, Any], arguments: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """The study's distributions from ``hydra.sweeper.params`` and the command line's sweeps (which win), and the
    command line's plain overrides, which every trial gets."""
    space: dict[str, Any] = {}
    fixed: list[str] = []
    for key, text in params.items():
        dist = distribution(str(key), str(text))
        if dist is None:
            fixed.append(f"{key}={text}")
        else:
            space[str(key)] = dist
    for argument in arguments:
        key, _, text = argument.partition("=")
        dist = distribution(key.lstrip("+~"), text)
        if dist is None:
            fixed.append(argument)
        else:
            space[key.lstrip("+~")] = dist
    fixed_keys = {item.partition("=")[0].lstrip("+~") for item in fixed}
    for key in fixed_keys & space.keys():
        del space[key]  # a value fixed on the command line replaces its search range
    return space, fixed


def override(key: str, value: Any) -> str:
    """A sampled value as a command-line override (floats kept exactly)."""
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"
