"""Personalize-style hyperparameter maps (string → string), parsed and validated against typed specs.

Personalize passes `algorithmHyperParameters` and `featureTransformationParameters` as string
maps (`{"popularity_discount_factor": "0.5"}`). A recipe declares one `HyperParameter` per
name; `parse_hyperparameters` turns the raw map into typed values or raises `RecipeError`
naming the hyperparameter, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from recommendations.engine.base import RecipeError

__all__ = ["HyperParameter", "default_hyperparameters", "parse_hyperparameters"]

Kind = Literal["int", "float", "bool", "choice"]
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class HyperParameter:
    """One typed hyperparameter: name, kind, default (as Personalize writes it) and allowed range."""

    name: str
    kind: Kind
    default: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    tunable: bool = False  # may take part in HPO (performHPO)

    def allowed(self) -> str:
        """Human description of the allowed values, for error messages."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.kind == "int" else "a number"
        low = "-inf" if self.minimum is None else _fmt(self.minimum)
        high = "inf" if self.maximum is None else _fmt(self.maximum)
        return f"{kind} in [{low}, {high}]"

    def parse(self, raw: Any) -> int | float | bool | str:
        """The typed value of `raw` (a string, or a number/bool from JSON), or RecipeError."""
        text = str(raw).strip() if not isinstance(raw, bool) else ("true" if raw else "false")
        value: int | float | bool | str
        if self.kind == "bool":
            lowered = text.lower()
            if lowered not in _TRUE | _FALSE:
                raise self._error(raw)
            return lowered in _TRUE
        if self.kind == "choice":
            wanted = " ".join(text.lower().split())
            for choice in self.choices:
                if " ".join(choice.lower().split()) == wanted:
                    return choice
            raise self._error(raw)
        try:
            number = float(text)
        except ValueError:
            raise self._error(raw) from None
        if not math.isfinite(number):
            raise self._error(raw)
        if self.kind == "int":
            if number != int(number):
                raise self._error(raw)
            value = int(number)
        else:
            value = number
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise self._error(raw)
        return value

    def _error(self, raw: Any) -> RecipeError:
        return RecipeError(f"hyperparameter {self.name!r} has value {raw!r}; it must be {self.allowed()}")


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def default_hyperparameters(specs: Iterable[HyperParameter]) -> dict[str, str]:
    """The Personalize-style default map for a recipe's `default_hyperparameters`."""
    return {spec.name: spec.default for spec in specs}


def parse_hyperparameters(specs: Iterable[HyperParameter], raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed values for every spec (defaults filled in); unknown names and bad values raise RecipeError."""
    by_name = {spec.name: spec for spec in specs}
    given = dict(raw or {})
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise RecipeError(f"unknown hyperparameter {unknown[0]!r} (known: {known})")
    return {name: spec.parse(given.get(name, spec.default)) for name, spec in by_name.items()}
