"""Two-level factorial designs over the prompt's ``components`` switches.

A design is a matrix in ±1 coding, one column per named factor, one row per run: +1 is ``true`` (the component is
on, as in the embedded default ``reasoning_tags``), -1 is ``false``. A row maps to the job overrides
``prompt.components.<factor>=true|false``.

- ``full_factorial``: all 2^k rows.
- ``fractional_factorial``: a regular 2^(k-p) design from generators (``"a b c abc"``, pyDOE3's notation: one word
  per factor, the single letters are the base factors) or from a wanted resolution.
- ``taguchi``: the orthogonal arrays L4, L8, L12 and L16 (two-level). L4/L8/L16 are regular (every column is a
  product of base columns); L12 is the Plackett-Burman design, which is non-regular: no effect is fully aliased with
  another, but every two-factor interaction is *partially* aliased (correlation ±1/3) with the main effects outside
  it. Factors are assigned to columns so that the design has the highest resolution available for k factors
  (L8: 3 factors → full 2^3, 4 → resolution IV, 5-7 → resolution III; 7 factors fill L8: saturated).

Aliasing is computed from the matrix itself, so it holds for any regular design: the *defining relation* is the set
of interaction words whose column is constant (±1), the resolution is the length of its shortest word, and an
effect's alias chain is every other effect (up to three-factor interactions) with the same column up to sign.

Why pyDOE3 and not oapackage: pyDOE3 is pure Python (numpy/scipy only, which we already have through statsmodels),
ships the standard Taguchi arrays by name (``get_orthogonal_array("L8(2^7)")``, in the classic column order where
column c is the product of the base columns in c's binary digits), Plackett-Burman (``pbdesign``) and regular
fractional factorials (``fracfact``, ``fracfact_by_res``). oapackage is a compiled extension aimed at *generating
and enumerating* arrays (including mixed-level and non-isomorphic ones), which is more than two-level screening
over eight switches needs, and a heavier wheel to keep working across the CPU and GPU environments.

``python -m sftlab.design`` (``sftlab.commands.design``) shows a design and confirms a finished one; the analysis is
``sftlab.analysis.design_stats``.
"""

from __future__ import annotations

import itertools
import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sftlab import rundir

PREFIX = "prompt.components"
KINDS = ("full", "fractional", "taguchi")
# Two-level arrays by short name; L12 is Plackett-Burman.
ARRAYS = {"L4": "L4(2^3)", "L8": "L8(2^7)", "L12": "L12(2^11)", "L16": "L16(2^15)"}
# Columns (1-based, the standard Taguchi numbering) in the order factors are assigned, best resolution first:
# the base columns, then the highest-order interaction columns.
COLUMN_ORDER = {
    "L4": [1, 2, 3],
    "L8": [1, 2, 4, 7, 3, 5, 6],
    "L16": [1, 2, 4, 8, 7, 11, 13, 14, 3, 5, 6, 9, 10, 12, 15],
}
L16_FIVE = [1, 2, 4, 8, 15]  # five factors in L16: E=ABCD, resolution V
MAX_ALIAS_ORDER = 3


class DesignError(ValueError):
    """A design that cannot be built as asked (too many factors for the array, a bad generator)."""


@dataclass
class Design:
    """A two-level design: ``matrix`` (runs x factors) in ±1 coding over ``factors``."""

    kind: str
    name: str
    factors: list[str]
    matrix: np.ndarray
    generators: list[str] = field(default_factory=list)
    columns: list[int] | None = None  # the array columns the factors sit in (Taguchi)
    prefix: str = PREFIX

    def __post_init__(self) -> None:
        self.matrix = np.asarray(self.matrix, dtype=int)
        if self.matrix.ndim != 2 or self.matrix.shape[1] != len(self.factors):
            raise DesignError(f"design matrix {self.matrix.shape} does not match {len(self.factors)} factors")
        if not np.isin(self.matrix, (-1, 1)).all():
            raise DesignError("a two-level design is coded -1/+1")
        if len(set(self.factors)) != len(self.factors):
            raise DesignError(f"factor names repeat: {self.factors}")

    @property
    def runs(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def letters(self) -> dict[str, str]:
        """A letter per factor (A, B, ...), for alias words."""
        return dict(zip(self.factors, string.ascii_uppercase, strict=False))

    def rows(self) -> list[dict[str, bool]]:
        """One ``{factor: level}`` per run, ``True`` for +1."""
        return [{f: bool(v > 0) for f, v in zip(self.factors, row, strict=True)} for row in self.matrix]

    def overrides(self, row: dict[str, bool]) -> list[str]:
        return [f"{self.prefix}.{factor}={str(level).lower()}" for factor, level in row.items()]

    def points(self, seeds: list[int]) -> list[dict[str, Any]]:
        """The study's fixed trials: every row crossed with every seed, as ``{override key: value}``."""
        return [
            {**{f"{self.prefix}.{f}": level for f, level in row.items()}, "seed": int(seed)}
            for row in self.rows()
            for seed in seeds
        ]

    # -------------------------------------------------------------------------------------------- aliasing

    def word(self, members: tuple[int, ...]) -> str:
        letters = list(self.letters.values())
        return "".join(letters[i] for i in members)

    def _column(self, members: tuple[int, ...]) -> np.ndarray:
        return np.prod(self.matrix[:, list(members)], axis=1) if members else np.ones(self.runs, dtype=int)

    def defining_relation(self) -> list[str]:
        """Interaction words whose column is constant (``I = ...``), shortest first; empty for a full factorial."""
        k = len(self.factors)
        words = []
        for order in range(1, k + 1):
            for members in itertools.combinations(range(k), order):
                column = self._column(members)
                if abs(column.sum()) == self.runs:
                    words.append(("-" if column[0] < 0 else "") + self.word(members))
        return words

    def is_regular(self) -> bool:
        """Every pair of effects (up to two-factor interactions) is orthogonal or fully aliased."""
        effects = self._effects(2)
        columns = np.array([self._column(m) for m in effects])
        correlations = np.abs(columns @ columns.T) / self.runs
        return bool(np.isin(np.round(correlations, 9), (0.0, 1.0)).all())

    def resolution(self) -> int | None:
        """The length of the shortest word of the defining relation; None for a full factorial (no aliasing) and
        for a non-regular design (partial aliasing only)."""
        if not self.is_regular():
            return None
        words = self.defining_relation()
        return min(len(w.lstrip("-")) for w in words) if words else None

    def _effects(self, max_order: int) -> list[tuple[int, ...]]:
        k = len(self.factors)
        return [m for order in range(1, min(max_order, k) + 1) for m in itertools.combinations(range(k), order)]

    def aliases(self, max_order: int = MAX_ALIAS_ORDER) -> dict[str, list[str]]:
        """Main effects and two-factor interactions with the effects (up to ``max_order``) fully aliased to them."""
        effects = self._effects(max_order)
        columns = {m: self._column(m) for m in effects}
        chains: dict[str, list[str]] = {}
        listed: set[str] = set()
        for members in self._effects(2):
            if self.word(members) in listed:
                continue
            own = columns[members]
            same = [
                ("-" if (own * columns[m]).sum() < 0 else "") + self.word(m)
                for m in effects
                if m != members and abs(int((own * columns[m]).sum())) == self.runs
            ]
            if same or len(members) == 1:
                chains[self.word(members)] = same
                listed.update(word.lstrip("-") for word in same)
        return chains

    def partial_aliases(self) -> list[str]:
        """For a non-regular design: main effects correlated (neither 0 nor ±1) with two-factor interactions."""
        lines = []
        for i in range(len(self.factors)):
            own = self._column((i,))
            partial = []
            for pair in itertools.combinations(range(len(self.factors)), 2):
                r = float((own * self._column(pair)).sum()) / self.runs
                if 0 < abs(r) < 1:
                    partial.append(f"{self.word(pair)} ({r:+.2f})")
            if partial:
                lines.append(f"{self.word((i,))} ~ " + ", ".join(partial))
        return lines

    def describe(self) -> list[str]:
        """The design in words: size, resolution, saturation, aliasing."""
        k = len(self.factors)
        legend = ", ".join(f"{letter}={factor}" for factor, letter in self.letters.items())
        lines = [f"{self.name}: {self.runs} runs, {k} two-level factors ({legend})"]
        if self.columns:
            lines.append(f"array columns used: {self.columns}")
        if self.generators:
            lines.append("generators: " + ", ".join(self.generators))
        if not self.is_regular():
            lines.append(
                "non-regular (Plackett-Burman type): no full aliasing, but two-factor interactions are partially "
                "aliased with main effects; read main effects as screening estimates"
            )
            return lines
        words = self.defining_relation()
        resolution = self.resolution()
        if resolution is None:
            lines.append("full factorial: every main effect and interaction is estimable, nothing is aliased")
            return lines
        roman = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}.get(resolution, resolution)
        saturated = self.runs - 1 == k
        lines.append(
            f"resolution {roman}"
            + (" and saturated (runs - 1 = factors: no degree of freedom left for error)" if saturated else "")
        )
        if resolution == 3:
            lines.append("main effects are aliased with two-factor interactions: they assume those are negligible")
        elif resolution == 4:
            lines.append("main effects are clear of two-factor interactions; two-factor interactions alias each other")
        shown = words if len(words) <= 16 else [*words[:16], f"... ({len(words)} words)"]
        lines.append("defining relation: I = " + " = ".join(shown))
        for effect, chain in self.aliases().items():
            if chain:
                lines.append(f"  {effect} = " + " = ".join(chain))
        return lines

    def to_json(self, seeds: list[int] | None = None) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "factors": list(self.factors),
            "prefix": self.prefix,
            "coding": {"-1": False, "+1": True},
            "matrix": self.matrix.tolist(),
            "columns": self.columns,
            "generators": self.generators,
            "seeds": list(seeds or []),
            "letters": self.letters,
            "resolution": self.resolution(),
            "regular": self.is_regular(),
            "defining_relation": self.defining_relation() if self.is_regular() else [],
            "aliases": self.aliases() if self.is_regular() else {},
            "partial_aliases": [] if self.is_regular() else self.partial_aliases(),
            "description": self.describe(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Design:
        return cls(
            kind=data["kind"],
            name=data["name"],
            factors=list(data["factors"]),
            matrix=np.asarray(data["matrix"]),
            generators=list(data.get("generators") or []),
            columns=data.get("columns"),
            prefix=data.get("prefix", PREFIX),
        )


def _check_factors(factors: list[str]) -> list[str]:
    factors = [str(f) for f in factors]
    if not factors:
        raise DesignError("a design needs at least one factor")
    if len(factors) > len(string.ascii_uppercase):
        raise DesignError(f"{len(factors)} factors: at most {len(string.ascii_uppercase)}")
    return factors


def full_factorial(factors: list[str]) -> Design:
    from pyDOE3 import ff2n

    factors = _check_factors(factors)
    if len(factors) > 10:
        raise DesignError(f"a full factorial of {len(factors)} factors is {2 ** len(factors)} runs: use a fraction")
    k = len(factors)
    return Design("full", f"2^{k} full factorial", factors, ff2n(k).astype(int))


def fractional_factorial(factors: list[str], generators: str | None = None, resolution: int | None = None) -> Design:
    """A regular 2^(k-p) design: ``generators`` in pyDOE3's notation (``"a b c abc"``: one word per factor), or the
    smallest design of ``resolution``."""
    from pyDOE3 import fracfact, fracfact_by_res

    factors = _check_factors(factors)
    k = len(factors)
    if generators:
        words = str(generators).lower().split()
        if len(words) != k:
            raise DesignError(f"generators {generators!r}: {len(words)} words for {k} factors (one word per factor)")
        try:
            matrix = fracfact(" ".join(words))
        except Exception as error:
            raise DesignError(f"generators {generators!r}: {error}") from None
    elif resolution is not None:
        try:
            matrix = fracfact_by_res(k, int(resolution))
        except Exception as error:
            raise DesignError(f"no 2^(k-p) design of {k} factors at resolution {resolution}: {error}") from None
        words = None
    else:
        raise DesignError("a fractional factorial needs generators or a resolution")
    matrix = np.asarray(matrix, dtype=int)
    p = k - int(round(np.log2(matrix.shape[0])))
    design = Design("fractional", f"2^({k}-{p}) fractional factorial", factors, matrix)
    if words is not None:
        letters = list(design.letters.values())
        design.generators = [
            f"{letters[i]}={word.upper()}" for i, word in enumerate(words) if len(word.lstrip("+-")) > 1
        ]
    else:
        design.generators = [f"I = {word}" for word in design.defining_relation()]
    return design


def taguchi(array: str, factors: list[str]) -> Design:
    """Taguchi's two-level orthogonal array ``array`` (L4, L8, L12, L16) with ``factors`` assigned to columns."""
    from pyDOE3 import get_orthogonal_array

    factors = _check_factors(factors)
    key = str(array).upper().split("(")[0]
    if key not in ARRAYS:
        raise DesignError(f"orthogonal array {array!r}: expected one of {', '.join(ARRAYS)}")
    oa = np.asarray(get_orthogonal_array(ARRAYS[key]), dtype=int)
    k, capacity = len(factors), oa.shape[1]
    if k > capacity:
        raise DesignError(f"{key} has {capacity} columns, {k} factors do not fit: use a larger array")
    if key == "L12":
        columns = list(range(1, k + 1))  # Plackett-Burman: every column is alike
    elif key == "L16" and k == 5:
        columns = L16_FIVE
    else:
        columns = COLUMN_ORDER[key][:k]
    matrix = 2 * oa[:, [c - 1 for c in columns]] - 1  # array level 1 (0) -> -1 (off), level 2 (1) -> +1 (on)
    design = Design("taguchi", ARRAYS[key], factors, matrix, columns=columns)
    if key != "L12":
        design.generators = _column_generators(design, columns)
    return design


def _column_generators(design: Design, columns: list[int]) -> list[str]:
    """Each factor outside the base columns (1, 2, 4, 8) as the signed product of the base factors: ``D=-ABC``."""
    base = [i for i, c in enumerate(columns) if c & (c - 1) == 0]
    generators = []
    for i, column in enumerate(columns):
        if i in base:
            continue
        members = tuple(j for j in base if columns[j] & column)
        if len(members) != bin(column).count("1"):
            continue  # a base column of this product is not in use (fewer factors than base columns)
        sign = int((design._column((i,)) * design._column(members)).sum()) // design.runs
        generators.append(f"{design.word((i,))}={'-' if sign < 0 else ''}{design.word(members)}")
    return generators


def build(spec: dict[str, Any] | Any) -> Design:
    """A design from its config (``conf/design/*.yaml``'s ``hydra.sweeper.design`` node, or a plain dict):
    ``type`` (full | fractional | taguchi), ``factors``, and ``array`` / ``generators`` / ``resolution``."""
    spec = dict(spec)
    kind = str(spec.get("type", "taguchi"))
    factors = list(spec.get("factors") or [])
    if kind == "full":
        design = full_factorial(factors)
    elif kind == "fractional":
        design = fractional_factorial(factors, spec.get("generators"), spec.get("resolution"))
    elif kind == "taguchi":
        design = taguchi(str(spec.get("array", "L8")), factors)
    else:
        raise DesignError(f"design type {kind!r}: expected one of {', '.join(KINDS)}")
    design.prefix = str(spec.get("prefix") or PREFIX)
    return design


def seeds_of(spec: dict[str, Any] | Any, default: int) -> list[int]:
    seeds = list(dict(spec).get("seeds") or [default])
    if len(set(seeds)) != len(seeds):
        raise DesignError(f"design seeds repeat: {seeds}")
    return [int(s) for s in seeds]


def write(design: Design, seeds: list[int], sweep_dir: Path) -> Path:
    path = Path(sweep_dir) / rundir.SWEEP_DESIGN
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(design.to_json(seeds), indent=2) + "\n", encoding="utf-8")
    return path


def read(sweep_dir: Path) -> tuple[Design, dict[str, Any]] | None:
    path = Path(sweep_dir) / rundir.SWEEP_DESIGN
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return Design.from_json(data), data


# ---------------------------------------------------------------------------------------------------- command line
