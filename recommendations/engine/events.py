"""Which events train a solution, and with what weight (Personalize's eventType / eventsConfig / threshold).

- `eventType` (CreateSolution, top level): train on that event type only, weight 1.
- `solutionConfig.eventValueThreshold` (string): keep only events whose value ≥ threshold.
- `solutionConfig.eventsConfig = {"eventParametersList": [{"eventType": "purchase",
  "eventValueThreshold": 10.0, "weight": 0.5}, ...]}` (≤ 10 entries, weight 0-1, default 1):
  train only on the listed event types, each with its weight; an entry's threshold replaces the
  solution-wide one for that type.

Event types match case-insensitively. An event without a value (NaN) fails any threshold.
Without any of these every event counts with weight 1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommendations.engine.base import InteractionData, RecipeError
from recommendations.engine.holdout import subset_events

__all__ = [
    "MAX_EVENT_PARAMETERS",
    "EventParameters",
    "EventSelection",
    "apply_event_selection",
    "event_selection",
    "event_weights",
]

MAX_EVENT_PARAMETERS = 10


@dataclass(frozen=True)
class EventParameters:
    """One entry of eventsConfig.eventParametersList (event type lower-cased)."""

    event_type: str
    event_value_threshold: float | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class EventSelection:
    """A solution's parsed event options; `parameters` is empty when all event types count."""

    parameters: tuple[EventParameters, ...] = ()
    event_value_threshold: float | None = None

    @property
    def is_trivial(self) -> bool:
        """True when every event trains with weight 1."""
        return not self.parameters and self.event_value_threshold is None


def _threshold(raw: Any, where: str) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise RecipeError(f"{where} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise RecipeError(f"{where} must be a finite number, got {raw!r}")
    return value


def _event_type(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise RecipeError(f"{where} must be a non-empty event type name, got {raw!r}")
    if len(raw) > 256:
        raise RecipeError(f"{where} is longer than 256 characters")
    return raw.strip().lower()


def event_selection(
    *, event_type: str | None = None, solution_config: Mapping[str, Any] | None = None
) -> EventSelection:
    """Parse CreateSolution's `eventType` and `solutionConfig` (eventValueThreshold, eventsConfig)."""
    config = dict(solution_config or {})
    threshold = _threshold(config.get("eventValueThreshold"), "solutionConfig.eventValueThreshold")
    events_config = config.get("eventsConfig")
    if event_type is not None and str(event_type).strip() and events_config:
        raise RecipeError("give either eventType or solutionConfig.eventsConfig, not both")
    if event_type is not None and str(event_type).strip():
        return EventSelection((EventParameters(_event_type(event_type, "eventType"), threshold),), threshold)
    if not events_config:
        return EventSelection((), threshold)
    if not isinstance(events_config, Mapping) or not isinstance(
        events_config.get("eventParametersList"), Sequence
    ):
        raise RecipeError('solutionConfig.eventsConfig must be {"eventParametersList": [...]}')
    entries = events_config["eventParametersList"]
    if isinstance(entries, str) or not entries:
        raise RecipeError("solutionConfig.eventsConfig.eventParametersList must be a non-empty list")
    if len(entries) > MAX_EVENT_PARAMETERS:
        raise RecipeError(
            f"solutionConfig.eventsConfig.eventParametersList has {len(entries)} entries; "
            f"at most {MAX_EVENT_PARAMETERS} are allowed"
        )
    parameters: list[EventParameters] = []
    for position, entry in enumerate(entries):
        where = f"eventParametersList[{position}]"
        if not isinstance(entry, Mapping):
            raise RecipeError(f"{where} must be an object with eventType, eventValueThreshold, weight")
        unknown = sorted(set(entry) - {"eventType", "eventValueThreshold", "weight"})
        if unknown:
            raise RecipeError(f"{where} has unknown field {unknown[0]!r}")
        name = _event_type(entry.get("eventType"), f"{where}.eventType")
        if any(p.event_type == name for p in parameters):
            raise RecipeError(f"{where}.eventType {entry['eventType']!r} is listed twice")
        weight = _threshold(entry.get("weight"), f"{where}.weight")
        weight = 1.0 if weight is None else weight
        if not 0.0 <= weight <= 1.0:
            raise RecipeError(f"{where}.weight is {entry['weight']!r}; it must be between 0 and 1")
        own = _threshold(entry.get("eventValueThreshold"), f"{where}.eventValueThreshold")
        parameters.append(EventParameters(name, own if own is not None else threshold, weight))
    return EventSelection(tuple(parameters), threshold)


def event_weights(
    selection: EventSelection,
    *,
    event_type: np.ndarray | None,
    event_types: Sequence[str],
    event_value: np.ndarray | None,
    n_events: int,
) -> np.ndarray:
    """Per-event float32 weight (0 = the event does not train) for codes into `event_types`."""
    values = None if event_value is None else np.asarray(event_value, dtype=np.float64)
    if not selection.parameters:
        weights = np.ones(n_events, dtype=np.float32)
        if selection.event_value_threshold is not None:
            passes = (
                values >= selection.event_value_threshold if values is not None else np.zeros(n_events, bool)
            )
            weights[~passes] = 0.0
        return weights
    weights = np.zeros(n_events, dtype=np.float32)
    if event_type is None:
        return weights  # no event types recorded: nothing matches a named type
    codes = np.asarray(event_type)
    lowered = [name.strip().lower() for name in event_types]
    for parameters in selection.parameters:
        matching_codes = [code for code, name in enumerate(lowered) if name == parameters.event_type]
        matches = np.isin(codes, matching_codes)
        if parameters.event_value_threshold is not None:
            if values is None:
                matches[:] = False
            else:
                matches &= values >= parameters.event_value_threshold
        weights[matches] = parameters.weight
    return weights


def apply_event_selection(
    data: InteractionData, selection: EventSelection, event_value: np.ndarray | None = None
) -> InteractionData:
    """The data with per-event weights set and events of weight 0 dropped."""
    if selection.is_trivial:
        return data
    weights = event_weights(
        selection,
        event_type=data.event_type,
        event_types=data.event_types,
        event_value=event_value,
        n_events=len(data.user),
    ) * np.asarray(data.weights, dtype=np.float32)
    keep = weights > 0
    return dataclasses.replace(subset_events(data, keep), weight=weights[keep].astype(np.float32))
