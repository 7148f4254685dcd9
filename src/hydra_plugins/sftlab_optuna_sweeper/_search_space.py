"""``hydra.sweeper.params`` (and sweep overrides on the command line) as Optuna distributions, checked up front.

The override grammar is read as the official Hydra Optuna sweeper reads it:

- ``choice(a, b, c)`` -> categorical
- ``range(start, stop, step)`` -> int (float if any bound is a float) from start to stop *inclusive*, as in the
  official plugin (Hydra's own ``range`` excludes stop); ``shuffle(range(...))`` -> categorical
- ``interval(low, high)`` -> uniform (int when both bounds are ints); ``tag(log, interval(...))`` -> log-uniform
- anything else -> a fixed value handed to every trial
- a delete (``~key``, ``~key=value``) -> handed to every trial as written

A mistake (inverted bounds, a step that does not fit, a choice of an unsupported type) is a :class:`SweepConfigError`,
one line naming the override, before any trial runs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

_ABSENT = object()


class SweepConfigError(CompactHydraException):
    """A mistake in the sweep's configuration, reported as one line before any trial runs."""


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)  # name -> override value, the same in every trial
    overrides: dict[str, Override] = field(default_factory=dict)  # name -> parsed override, for the checks
    deletes: list[str] = field(default_factory=list)  # ~key or ~key=value, as written

    def trial_overrides(self, params: dict[str, Any]) -> list[str]:
        """The job's override list: sampled params, then fixed values, then deletes."""
        values = {**params, **self.fixed}
        return [f"{name}={value}" for name, value in values.items()] + self.deletes

    def probe_overrides(self) -> list[list[str]]:
        """A few override lists that, together, use every choice and both ends of every range: to compose once each."""
        values = {name: _probe_values(dist) for name, dist in self.distributions.items()}
        rounds = max((len(v) for v in values.values()), default=1)
        return [
            self.trial_overrides({name: vals[min(i, len(vals) - 1)] for name, vals in values.items()})
            for i in range(rounds)
        ]

    def grid(self) -> dict[str, list[Any]]:
        """The search space as GridSampler choices; only discrete distributions have one."""
        grid = {}
        for name, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                grid[name] = list(dist.choices)
            elif dist.step is not None and not dist.log:
                count = int(round((dist.high - dist.low) / dist.step)) + 1
                grid[name] = [dist.low + i * dist.step for i in range(count)]
            else:
                raise SweepConfigError(f"hydra.sweeper.params.{name}: the grid sampler needs choice(...) or range(...)")
        return grid


def _probe_values(dist: BaseDistribution) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]


def distribution(override: Override) -> BaseDistribution | str:
    """One override as an Optuna distribution, or its value as a string when it does not sweep."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    name = override.get_key_element()
    if override.is_choice_sweep() or (isinstance(value, RangeSweep) and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        for choice in choices:
            if not isinstance(choice, (str, int, float, bool, type(None))):
                raise SweepConfigError(f"{name}: a choice must be a str, int, float, bool or null, not {choice!r}")
        return CategoricalDistribution(choices)
    try:
        return _numeric(value)
    except ValueError as error:  # Optuna's checks: low <= high, a positive step, log bounds above 0
        raise SweepConfigError(f"{override.input_line}: {error}") from None
    except TypeError:
        raise SweepConfigError(f"{override.input_line}: not a sweep the Optuna sweeper understands") from None


def _numeric(value: Any) -> BaseDistribution:
    if isinstance(value, RangeSweep):
        if value.start > value.stop:
            raise ValueError(f"range from {value.start} down to {value.stop}: the start must not exceed the stop")
        if any(isinstance(x, float) for x in (value.start, value.stop, value.step)):
            return FloatDistribution(float(value.start), float(value.stop), step=float(value.step))
        return IntDistribution(int(value.start), int(value.stop), step=int(value.step))
    if isinstance(value, IntervalSweep):
        if value.start > value.end:
            raise ValueError(f"interval from {value.start} down to {value.end}: the low bound must not exceed the high")
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    assert not isinstance(value, ChoiceSweep)
    raise TypeError(value)


def parse(params: DictConfig | dict | None, arguments: list[str]) -> SearchSpace:
    """``params`` from the sweeper config, then the command line's overrides (a later one wins for the same name)."""
    lines = [f"{name}={value}" for name, value in (params or {}).items()] + list(arguments)
    space = SearchSpace()
    for override in OverridesParser.create().parse_overrides(lines):
        if override.is_delete():
            space.deletes.append(str(override.input_line))
            continue
        name = override.get_key_element()
        space.distributions.pop(name, None)
        space.fixed.pop(name, None)
        value = distribution(override)
        if isinstance(value, BaseDistribution):
            space.distributions[name] = value
        else:
            space.fixed[name] = value
        space.overrides[name] = override
    return space


def _leaf_keys(cfg: Any, prefix: str = "") -> list[str]:
    keys = []
    if OmegaConf.is_dict(cfg):
        for key in cfg:
            path = f"{prefix}{key}"
            keys.append(path)
            node = cfg._get_node(key)
            if OmegaConf.is_config(node):
                keys.extend(_leaf_keys(node, path + "."))
    return keys


def check_names(space: SearchSpace, config: DictConfig) -> None:
    """Every parameter must name a key (or a config group) of the composed config: a typo fails here, by name."""
    choices = config.hydra.runtime.choices
    unknown = []
    for override in space.overrides.values():
        if override.is_add() or override.is_force_add() or override.package is not None:
            continue
        key = override.key_or_group
        if key in choices:
            continue
        if OmegaConf.select(config, key, default=_ABSENT, throw_on_missing=False) is _ABSENT:
            unknown.append(key)
    if unknown:
        known = _leaf_keys(config) + list(choices.keys())
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise SweepConfigError(
            f"sweep parameter{'s' if len(parts) > 1 else ''} {', '.join(parts)}: not a key of the composed config "
            "(hydra.sweeper.params or a sweep override); no trial was run"
        )
