"""Evaluate a checked filter AST over column arrays: boolean masks over items (or users). Pure numpy.

Semantics (Amazon Personalize's): categorical fields hold `|`-joined values and IN matches any
one of them exactly; comparisons are numeric; a missing value never matches any condition, NOT IN
and != included (as in SQL); event types match without case and `"*"` means every type; interaction
conditions look at the newest `limit` interactions per event type. Parts joined by `|` give
(union of INCLUDE parts, or every row when there is none) minus (union of EXCLUDE parts). A part
whose `IF CurrentUser ...` does not hold is not applied. A placeholder without values is an error
in an INCLUDE part and drops an EXCLUDE part.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from catalog.schemas import FieldKind
from recommendations.errors import FilterError
from recommendations.filters.parser import (
    ALL_EVENT_TYPES,
    Action,
    AllOf,
    AnyOf,
    Condition,
    Dataset,
    Expression,
    FieldRef,
    FilterExpression,
    Literals,
    Node,
    Number,
    Operator,
    Placeholder,
    SchemaFields,
)

__all__ = [
    "DEFAULT_INTERACTION_LIMIT",
    "CategoricalColumn",
    "Column",
    "EvaluationInput",
    "NumericColumn",
    "RecentInteractions",
    "filter_mask",
    "part_is_static",
    "part_values_key",
    "recent_per_event_type",
    "where_mask",
]

DEFAULT_INTERACTION_LIMIT = 100


@dataclass(frozen=True)
class CategoricalColumn:
    """A categorical field over rows: each row's `|`-separated values as codes (CSR layout)."""

    indptr: np.ndarray
    codes: np.ndarray
    vocabulary: Mapping[str, int]

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> CategoricalColumn:
        """Build from raw stored values ("A|B", a list, or None/"" for missing)."""
        vocabulary: dict[str, int] = {}
        indptr = np.zeros(len(values) + 1, dtype=np.int64)
        codes: list[int] = []
        for row, value in enumerate(values):
            for part in _split(value):
                codes.append(vocabulary.setdefault(part, len(vocabulary)))
            indptr[row + 1] = len(codes)
        return cls(indptr, np.asarray(codes, dtype=np.int64), vocabulary)

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return len(self.indptr) - 1

    def present(self) -> np.ndarray:
        """Rows with at least one value."""
        return np.diff(self.indptr) > 0

    def matches(self, wanted: Iterable[str]) -> np.ndarray:
        """Rows holding at least one of the wanted values, exactly."""
        wanted_codes = [self.vocabulary[value] for value in wanted if value in self.vocabulary]
        mask = np.zeros(self.n_rows, dtype=bool)
        if not wanted_codes or not len(self.codes):
            return mask
        hit = np.isin(self.codes, np.asarray(wanted_codes, dtype=np.int64))
        owner = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        mask[owner[hit]] = True
        return mask


@dataclass(frozen=True)
class NumericColumn:
    """A numerical field over rows (NaN where missing)."""

    values: np.ndarray

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> NumericColumn:
        """Build from raw stored values (numbers, numeric strings, None)."""
        return cls(np.array([_as_float(value) for value in values], dtype=np.float64))

    def present(self) -> np.ndarray:
        """Rows with a value."""
        return ~np.isnan(self.values)


Column = CategoricalColumn | NumericColumn


@dataclass(frozen=True)
class RecentInteractions:
    """A user's interactions, newest first: the row (item index, -1 if unknown) and the event type."""

    row: np.ndarray
    event_type: np.ndarray

    @classmethod
    def empty(cls) -> RecentInteractions:
        """No interactions."""
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object))

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, str]]) -> RecentInteractions:
        """From (row, event type) pairs, newest first."""
        if not rows:
            return cls.empty()
        row = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
        kinds = np.array([kind for _, kind in rows], dtype=object)
        return cls(row, kinds)


def recent_per_event_type(interactions: RecentInteractions, limit: int) -> RecentInteractions:
    """Keep the newest `limit` interactions of each event type (compared without case)."""
    if limit <= 0:
        return RecentInteractions.empty()
    if len(interactions.row) <= limit:
        return interactions
    lowered = np.array([str(kind).lower() for kind in interactions.event_type], dtype=object)
    _, inverse = np.unique(lowered.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sorted_groups = inverse[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    rank_sorted = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    keep = rank < limit
    return RecentInteractions(interactions.row[keep], interactions.event_type[keep])


@dataclass(frozen=True)
class EvaluationInput:
    """What a filter is evaluated over: rows' columns and the request's context."""

    n_rows: int
    columns: Mapping[str, Column] = field(default_factory=dict)
    kinds: SchemaFields = field(default_factory=dict)
    interactions: RecentInteractions | None = None
    current_user: Mapping[str, Any] | None = None
    current_item: Mapping[str, Any] | None = None
    filter_values: Mapping[str, Sequence[str]] = field(default_factory=dict)


# --- values ------------------------------------------------------------------------------------


def _split(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None and v != ""]
    if isinstance(value, bool):
        return [str(value).lower()]
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    return [part for part in str(value).split("|") if part != ""]


def _as_float(value: Any) -> float:
    if value is None or isinstance(value, bool) or value == "":
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _literal_texts(operand: Literals) -> list[str]:
    return [value.text if isinstance(value, Number) else value for value in operand.values]


def _numbers(condition: Condition, texts: Sequence[str], where: str) -> list[float]:
    numbers = []
    for text in texts:
        number = _as_float(text)
        if math.isnan(number):
            raise FilterError(f"{where}: {text!r} is not a number ({condition.ref} is numerical)")
        numbers.append(number)
    return numbers


def _operand_texts(condition: Condition, inp: EvaluationInput) -> list[str] | None:
    """The condition's values as strings; None when a CurrentItem value is missing (no match)."""
    operand = condition.operand
    if isinstance(operand, Literals):
        return _literal_texts(operand)
    if isinstance(operand, Placeholder):
        return [str(value) for value in inp.filter_values.get(operand.name, ())]
    if inp.current_item is None:
        raise FilterError(
            f"the filter compares with {operand} and needs a current item (a related-items request)"
        )
    texts = _split(inp.current_item.get(operand.field))
    return texts or None


def _kind(inp: EvaluationInput, ref: FieldRef) -> FieldKind:
    dataset = {Dataset.CURRENT_USER: Dataset.USERS, Dataset.CURRENT_ITEM: Dataset.ITEMS}.get(
        ref.dataset, ref.dataset
    )
    return inp.kinds.get(dataset, {}).get(ref.field, FieldKind.CATEGORICAL)


def _where(condition: Condition) -> str:
    if isinstance(condition.operand, Placeholder):
        return f"filter value ${condition.operand.name}"
    return f"position {condition.position}"


def _compare(values: np.ndarray, operator: Operator, number: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        match operator:
            case Operator.EQ:
                return values == number
            case Operator.NE:
                return (values != number) & ~np.isnan(values)
            case Operator.LT:
                return values < number
            case Operator.LE:
                return values <= number
            case Operator.GT:
                return values > number
            case _:
                return values >= number


# --- conditions --------------------------------------------------------------------------------


def _interaction_mask(condition: Condition, inp: EvaluationInput) -> np.ndarray:
    mask = np.zeros(inp.n_rows, dtype=bool)
    texts = _operand_texts(condition, inp) or []
    interactions = inp.interactions
    if interactions is None or not len(interactions.row):
        return mask
    wanted = {text.lower() for text in texts}
    lowered = np.array([str(kind).lower() for kind in interactions.event_type], dtype=object)
    if ALL_EVENT_TYPES in wanted:
        selected = np.ones(len(lowered), dtype=bool)
    else:
        selected = np.isin(lowered.astype(str), np.array(sorted(wanted), dtype=str))
    if condition.operator is Operator.NOT_IN:
        selected = ~selected if ALL_EVENT_TYPES not in wanted else np.zeros(len(lowered), dtype=bool)
    rows = interactions.row[selected]
    rows = rows[(rows >= 0) & (rows < inp.n_rows)]
    mask[rows] = True
    return mask


def _column_mask(condition: Condition, inp: EvaluationInput) -> np.ndarray:
    column = inp.columns.get(condition.ref.field)
    texts = _operand_texts(condition, inp)
    if column is None or texts is None:
        return np.zeros(inp.n_rows, dtype=bool)
    operator = condition.operator
    if isinstance(column, CategoricalColumn):
        if not operator.is_membership:
            raise FilterError(f"position {condition.position}: {condition.ref} is not numerical")
        matched = column.matches(texts)
        return matched if operator is Operator.IN else column.present() & ~matched
    numbers = _numbers(condition, texts, _where(condition))
    values = column.values
    if operator.is_membership:
        matched = np.isin(values, np.asarray(numbers, dtype=np.float64))
        return matched if operator is Operator.IN else column.present() & ~matched
    if len(numbers) != 1:
        raise FilterError(f"{_where(condition)}: {operator} needs exactly one value, got {len(numbers)}")
    return _compare(values, operator, numbers[0])


def _condition_mask(condition: Condition, inp: EvaluationInput) -> np.ndarray:
    if condition.ref.dataset is Dataset.INTERACTIONS:
        return _interaction_mask(condition, inp)
    return _column_mask(condition, inp)


def where_mask(part: Expression, inp: EvaluationInput) -> np.ndarray:
    """The rows matching the part's WHERE conditions (ignoring its IF)."""
    return _node_mask(part.where, inp)


def _node_mask(node: Node, inp: EvaluationInput) -> np.ndarray:
    if isinstance(node, Condition):
        return _condition_mask(node, inp)
    masks = [_node_mask(term, inp) for term in node.terms]
    if isinstance(node, AllOf):
        return np.logical_and.reduce(masks)
    assert isinstance(node, AnyOf)
    return np.logical_or.reduce(masks)


def _gate_holds(condition: Condition, inp: EvaluationInput) -> bool:
    if inp.current_user is None:
        return False
    user_values = _split(inp.current_user.get(condition.ref.field))
    texts = _operand_texts(condition, inp) or []
    if not user_values:
        return False
    operator = condition.operator
    if _kind(inp, condition.ref) is FieldKind.NUMERICAL:
        user_number = _as_float(user_values[0])
        if math.isnan(user_number):
            return False
        numbers = _numbers(condition, texts, _where(condition))
        if operator.is_membership:
            return (user_number in numbers) == (operator is Operator.IN)
        if len(numbers) != 1:
            raise FilterError(f"{_where(condition)}: {operator} needs exactly one value, got {len(numbers)}")
        return bool(_compare(np.array([user_number]), operator, numbers[0])[0])
    if not operator.is_membership:
        return False
    hit = bool(set(user_values) & set(texts))
    return hit if operator is Operator.IN else not hit


def part_is_static(part: Expression) -> bool:
    """True when the part's WHERE depends only on row columns and filter values (so it can be cached)."""
    return all(
        c.ref.dataset is not Dataset.INTERACTIONS and not isinstance(c.operand, FieldRef)
        for c in part.conditions()
    )


def part_values_key(part: Expression, filter_values: Mapping[str, Sequence[str]]) -> tuple:
    """The filter values a part's WHERE depends on, as a hashable key."""
    names = sorted({c.operand.name for c in part.conditions() if isinstance(c.operand, Placeholder)})
    return tuple((name, tuple(str(v) for v in filter_values.get(name, ()))) for name in names)


def filter_mask(
    expression: FilterExpression,
    inp: EvaluationInput,
    *,
    where_masks: Mapping[int, np.ndarray] | None = None,
) -> np.ndarray:
    """Rows the filter lets through; `where_masks` gives precomputed WHERE masks by part index."""
    includes: list[np.ndarray] = []
    excludes: list[np.ndarray] = []
    for index, part in enumerate(expression.parts):
        missing = [name for name in part.placeholders if not inp.filter_values.get(name)]
        if missing:
            if part.action is Action.INCLUDE:
                raise FilterError(
                    f"filter value ${missing[0]} is required: it is used by an INCLUDE expression"
                )
            continue  # Personalize drops an EXCLUDE expression whose placeholder has no value
        if part.gate and not all(_gate_holds(condition, inp) for condition in part.gate):
            continue
        mask = where_masks.get(index) if where_masks else None
        if mask is None:
            mask = where_mask(part, inp)
        (includes if part.action is Action.INCLUDE else excludes).append(mask)
    result = np.logical_or.reduce(includes) if includes else np.ones(inp.n_rows, dtype=bool)
    if excludes:
        return result & ~np.logical_or.reduce(excludes)
    return np.array(result, dtype=bool)  # a copy: callers may cache the part masks
