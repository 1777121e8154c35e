"""Parse Personalize filter expressions (grammar.lark, lark LALR) into a typed AST; check them on schemas.

`parse_filter_expression(text)` returns a `FilterExpression` or raises `FilterSyntaxError` with the
1-based position and what was expected there. `check_filter_expression(expression, fields=...)`
applies Personalize's rules that need the dataset schemas (known, filterable fields; operators that
fit the field's kind; one dataset per expression; user conditions only for UserID filters) and
raises `FilterError` naming the position and the field. Neither imports Django.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from catalog.schemas import FieldKind
from recommendations.errors import FilterError, FilterSyntaxError

__all__ = [
    "ALL_EVENT_TYPES",
    "MAX_EXPRESSION_LENGTH",
    "MAX_FILTER_FIELDS",
    "Action",
    "AllOf",
    "AnyOf",
    "Condition",
    "Dataset",
    "Expression",
    "FieldRef",
    "FilterExpression",
    "Literals",
    "Node",
    "Number",
    "Operand",
    "Operator",
    "Placeholder",
    "SchemaFields",
    "Target",
    "check_filter_expression",
    "parse_filter_expression",
]

MAX_EXPRESSION_LENGTH = 2500  # CreateFilter's filterExpression limit
MAX_FILTER_FIELDS = 10  # distinct dataset fields per filter (Personalize's current quota)
ALL_EVENT_TYPES = "*"


class Action(StrEnum):
    """INCLUDE keeps only matching rows; EXCLUDE removes matching rows."""

    INCLUDE = "INCLUDE"
    EXCLUDE = "EXCLUDE"


class Target(StrEnum):
    """What a filter filters: items (recommendations) or users (segments)."""

    ITEM = "ItemID"
    USER = "UserID"


class Dataset(StrEnum):
    """The dataset part of `Dataset.FIELD`."""

    ITEMS = "Items"
    INTERACTIONS = "Interactions"
    USERS = "Users"
    CURRENT_USER = "CurrentUser"
    CURRENT_ITEM = "CurrentItem"


class Operator(StrEnum):
    """Condition operators: set membership on values, or numeric comparison."""

    IN = "IN"
    NOT_IN = "NOT IN"
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="

    @property
    def is_membership(self) -> bool:
        """True for IN and NOT IN."""
        return self in (Operator.IN, Operator.NOT_IN)


@dataclass(frozen=True)
class FieldRef:
    """`Dataset.FIELD` as written (field names are case-sensitive)."""

    dataset: Dataset
    field: str

    def __str__(self) -> str:
        return f"{self.dataset}.{self.field}"


@dataclass(frozen=True)
class Number:
    """A number literal: its value and its source text (used when matched against categorical values)."""

    value: float
    text: str


@dataclass(frozen=True)
class Literals:
    """Fixed values: a parenthesised list for IN / NOT IN, or the one number of a comparison."""

    values: tuple[str | Number, ...]


@dataclass(frozen=True)
class Placeholder:
    """`$NAME`: values given at request time as filter values named NAME (case-sensitive)."""

    name: str


Operand = Literals | Placeholder | FieldRef


@dataclass(frozen=True)
class Condition:
    """`ref operator operand`; `position` is the 1-based character offset of `ref`."""

    ref: FieldRef
    operator: Operator
    operand: Operand
    position: int


@dataclass(frozen=True)
class AllOf:
    """Conditions joined by AND."""

    terms: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    """Conditions joined by OR."""

    terms: tuple[Node, ...]


Node = Condition | AllOf | AnyOf


def _conditions(node: Node) -> Iterator[Condition]:
    if isinstance(node, Condition):
        yield node
        return
    for term in node.terms:
        yield from _conditions(term)


@dataclass(frozen=True)
class Expression:
    """One `INCLUDE|EXCLUDE ItemID|UserID WHERE ... [IF ...]` part of a filter."""

    action: Action
    target: Target
    where: Node
    gate: tuple[Condition, ...]
    position: int

    def conditions(self) -> Iterator[Condition]:
        """Every condition of the WHERE part, left to right."""
        yield from _conditions(self.where)

    @property
    def dataset(self) -> Dataset:
        """The dataset of the first WHERE condition (all of them, once checked)."""
        return next(self.conditions()).ref.dataset

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Placeholder names used in this part (WHERE and IF), in order of first use."""
        names = [
            c.operand.name for c in (*self.conditions(), *self.gate) if isinstance(c.operand, Placeholder)
        ]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class FilterExpression:
    """A whole filter: expressions joined by `|` (include-union minus exclude-union)."""

    parts: tuple[Expression, ...]

    @property
    def target(self) -> Target:
        """ItemID or UserID (the same for every part, once checked)."""
        return self.parts[0].target

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Every placeholder name (without `$`), in order of first use."""
        return tuple(dict.fromkeys(name for part in self.parts for name in part.placeholders))

    @property
    def required_placeholders(self) -> tuple[str, ...]:
        """Placeholders of INCLUDE parts: a request must give values for them."""
        names = (name for part in self.parts if part.action is Action.INCLUDE for name in part.placeholders)
        return tuple(dict.fromkeys(names))


# --- parsing -----------------------------------------------------------------------------------

TERMINAL_NAMES = {
    "INCLUDE": "INCLUDE",
    "EXCLUDE": "EXCLUDE",
    "ITEM_ID": "ItemID",
    "USER_ID": "UserID",
    "WHERE": "WHERE",
    "ITEMS": "Items.FIELD",
    "INTERACTIONS": "Interactions.EVENT_TYPE",
    "USERS": "Users.FIELD",
    "LPAR": "(",
    "IN": "IN",
    "NOT": "NOT IN",
    "EQ": "=",
    "NE": "!=",
    "LT": "<",
    "LE": "<=",
    "GT": ">",
    "GE": ">=",
    "STRING": 'a "quoted string"',
    "NUMBER": "a number",
    "PLACEHOLDER": "$PLACEHOLDER",
    "CURRENT_ITEM": "CurrentItem.FIELD",
    "COMMA": ",",
    "RPAR": ")",
    "AND": "AND",
    "OR": "OR",
    "IF": "IF",
    "CURRENT_USER": "CurrentUser.FIELD",
    "PIPE": "|",
    "DOT": ".",
    "FIELD": "a field name",
    "$END": "the end of the expression",
}
TERMINAL_ORDER = {name: index for index, name in enumerate(TERMINAL_NAMES)}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="contextual", maybe_placeholders=False)


def _unescape(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1], flags=re.DOTALL)


class _Syntax(Exception):
    """A rule the grammar cannot say (raised inside the transformer, re-raised with the position)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@v_args(inline=True)
class _ToAst(Transformer):
    def start(self, *children: Expression | Token) -> FilterExpression:
        return FilterExpression(tuple(child for child in children if isinstance(child, Expression)))

    def expression(self, action: Token, target: Token, where: Token, node: Node, *gate: tuple) -> Expression:
        conditions = gate[0] if gate else ()
        return Expression(
            Action(action.value.upper()),
            Target.ITEM if target.type == "ITEM_ID" else Target.USER,
            node,
            conditions,
            action.start_pos + 1,
        )

    def action(self, token: Token) -> Token:
        return token

    def target(self, token: Token) -> Token:
        return token

    def or_condition(self, *children: Node | Token) -> Node:
        terms = tuple(child for child in children if not isinstance(child, Token))
        return terms[0] if len(terms) == 1 else AnyOf(terms)

    def and_condition(self, *children: Node | Token) -> Node:
        terms = tuple(child for child in children if not isinstance(child, Token))
        return terms[0] if len(terms) == 1 else AllOf(terms)

    def atom(self, _open: Token, node: Node, _close: Token) -> Node:
        return node

    def _condition(self, ref: tuple[FieldRef, int], operator: Operator, operand: Operand) -> Condition:
        field_ref, offset = ref
        if operator is Operator.NOT_IN and isinstance(operand, Placeholder):
            raise _Syntax(
                f"placeholders are not allowed with NOT IN (${operand.name} after {field_ref}); use IN "
                "with the opposite action (INCLUDE instead of EXCLUDE, or the reverse)",
                offset,
            )
        return Condition(field_ref, operator, operand, offset + 1)

    def condition(self, ref: tuple[FieldRef, int], operator: Operator, operand: Operand) -> Condition:
        return self._condition(ref, operator, operand)

    def user_condition(self, ref: tuple[FieldRef, int], operator: Operator, operand: Operand) -> Condition:
        return self._condition(ref, operator, operand)

    def where_ref(self, dataset: Token, _dot: Token, field: Token) -> tuple[FieldRef, int]:
        names = {"ITEMS": Dataset.ITEMS, "INTERACTIONS": Dataset.INTERACTIONS, "USERS": Dataset.USERS}
        return FieldRef(names[dataset.type], field.value), dataset.start_pos

    def user_ref(self, dataset: Token, _dot: Token, field: Token) -> tuple[FieldRef, int]:
        return FieldRef(Dataset.CURRENT_USER, field.value), dataset.start_pos

    def current_item(self, _dataset: Token, _dot: Token, field: Token) -> FieldRef:
        return FieldRef(Dataset.CURRENT_ITEM, field.value)

    def if_clause(self, *children: Condition | Token) -> tuple[Condition, ...]:
        return tuple(child for child in children if isinstance(child, Condition))

    def op_in(self, _token: Token) -> Operator:
        return Operator.IN

    def op_not_in(self, _not: Token, _in: Token) -> Operator:
        return Operator.NOT_IN

    def comparison(self, token: Token) -> Operator:
        return Operator(token.value)

    def literal(self, token: Token) -> str | Number:
        if token.type == "STRING":
            return _unescape(token.value)
        return _number(token)

    def in_literals(self, *children: str | Number | Token) -> Literals:
        return Literals(tuple(child for child in children if not isinstance(child, Token)))

    def in_placeholder(self, *children: Token) -> Placeholder:
        token = next(child for child in children if child.type == "PLACEHOLDER")
        return Placeholder(token.value[1:])

    def in_current_item(self, ref: FieldRef) -> FieldRef:
        return ref

    def compare_number(self, token: Token) -> Literals:
        return Literals((_number(token),))

    def compare_placeholder(self, token: Token) -> Placeholder:
        return Placeholder(token.value[1:])

    def compare_current_item(self, ref: FieldRef) -> FieldRef:
        return ref


def _number(token: Token) -> Number:
    value = float(token.value)
    if not math.isfinite(value):
        raise _Syntax(f"{token.value} is not a finite number", token.start_pos)
    return Number(value, token.value)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _after(text: str, offset: int) -> str:
    before = text[:offset].rstrip()
    if not before:
        return ""
    match = re.search(r"(?:[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z0-9_]+|\"(?:[^\"\\]|\\.)*\"|\S+)$", before)
    return f" after {match.group(0)}" if match else ""


def _expected(names: set[str] | frozenset[str]) -> tuple[str, ...]:
    known = sorted((n for n in names if n in TERMINAL_NAMES), key=TERMINAL_ORDER.__getitem__)
    return tuple(TERMINAL_NAMES[name] for name in known)


def _syntax_error(text: str, offset: int, message: str, expected: tuple[str, ...] = ()) -> FilterSyntaxError:
    line, column = _line_column(text, offset)
    return FilterSyntaxError(message, position=offset + 1, line=line, column=column, expected=expected)


def _describe(text: str, error: UnexpectedInput) -> FilterSyntaxError:
    if isinstance(error, UnexpectedEOF):
        offset = len(text)
        expected = _expected(set(error.expected))
        found = "the end of the expression"
    elif isinstance(error, UnexpectedToken):
        offset = error.token.start_pos if error.token.start_pos is not None else len(text)
        expected = _expected(set(error.expected))
        found = "the end of the expression" if error.token.type == "$END" else repr(str(error.token))
        if error.token.type == "$END":
            offset = len(text)
    elif isinstance(error, UnexpectedCharacters):
        offset = error.pos_in_stream
        expected = _expected(set(error.allowed or ()))
        found = repr(text[offset : offset + 12])
    else:  # pragma: no cover - lark raises only the three above
        offset = getattr(error, "pos_in_stream", 0) or 0
        expected, found = (), "invalid text"
    if expected:
        head = ", ".join(expected[:-1])
        listed = f"{head} or {expected[-1]}" if head else expected[0]
        message = f"expected {listed}{_after(text, offset)}, found {found}"
    else:
        message = f"unexpected {found}{_after(text, offset)}"
    return _syntax_error(text, offset, message, expected)


@lru_cache(maxsize=512)
def parse_filter_expression(text: str) -> FilterExpression:
    """Parse filter expression text; raises FilterSyntaxError (position, what was expected)."""
    if not isinstance(text, str):
        raise TypeError("a filter expression is text")
    if not text.strip():
        return _raise(_syntax_error(text, 0, "a filter expression is required (expected INCLUDE or EXCLUDE)"))
    if len(text) > MAX_EXPRESSION_LENGTH:
        message = f"the expression is {len(text)} characters long; the limit is {MAX_EXPRESSION_LENGTH}"
        return _raise(_syntax_error(text, MAX_EXPRESSION_LENGTH, message))
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as error:
        raise _describe(text, error) from None
    except RecursionError:
        raise _syntax_error(text, 0, "the expression is nested too deeply") from None
    try:
        return _ToAst().transform(tree)
    except VisitError as error:
        original = error.orig_exc
        if isinstance(original, _Syntax):
            raise _syntax_error(text, original.offset, original.message) from None
        if isinstance(original, RecursionError):
            raise _syntax_error(text, 0, "the expression is nested too deeply") from None
        raise
    except RecursionError:
        raise _syntax_error(text, 0, "the expression is nested too deeply") from None


def _raise(error: Exception) -> FilterExpression:
    raise error


# --- semantic checks ---------------------------------------------------------------------------

SchemaFields = Mapping[Dataset, Mapping[str, FieldKind]]
"""Filterable candidates per dataset: Items / Users metadata kinds, Interactions.EVENT_TYPE."""

FILTERABLE_KINDS = (FieldKind.CATEGORICAL, FieldKind.NUMERICAL)
WHERE_DATASETS = {
    Target.ITEM: (Dataset.ITEMS, Dataset.INTERACTIONS),
    Target.USER: (Dataset.USERS, Dataset.INTERACTIONS),
}


def _fail(condition: Condition, message: str) -> FilterError:
    return FilterError(f"position {condition.position}: {message}")


def _field_kind(condition: Condition, ref: FieldRef, fields: SchemaFields) -> FieldKind:
    dataset = Dataset.USERS if ref.dataset is Dataset.CURRENT_USER else ref.dataset
    if dataset is Dataset.CURRENT_ITEM:
        dataset = Dataset.ITEMS
    known = fields.get(dataset, {})
    if ref.field not in known:
        folded = [name for name in known if name.lower() == ref.field.lower()]
        hint = f" (field names are case-sensitive: did you mean {folded[0]}?)" if folded else ""
        listed = ", ".join(sorted(known)) or f"none (the {dataset} dataset has no schema yet)"
        raise _fail(condition, f"unknown field {ref}{hint}; known {dataset} fields: {listed}")
    kind = known[ref.field]
    if kind is FieldKind.TEXTUAL:
        raise _fail(condition, f"{ref} is a textual field; textual fields cannot be filtered")
    if kind is FieldKind.BOOLEAN:
        raise _fail(
            condition,
            f'{ref} is a boolean field; booleans cannot be filtered (store "True"/"False" as a '
            "categorical string, or 0/1 as a number)",
        )
    if kind not in FILTERABLE_KINDS and ref.dataset is not Dataset.INTERACTIONS:
        raise _fail(condition, f"{ref} cannot be filtered")
    return kind


def _check_condition(condition: Condition, fields: SchemaFields) -> None:
    ref, operator, operand = condition.ref, condition.operator, condition.operand
    if ref.dataset is Dataset.INTERACTIONS:
        if ref.field != "EVENT_TYPE":
            raise _fail(condition, f"{ref}: only Interactions.EVENT_TYPE can be filtered")
        if not operator.is_membership:
            raise _fail(condition, f"Interactions.EVENT_TYPE takes IN or NOT IN, not {operator}")
        if isinstance(operand, FieldRef):
            raise _fail(condition, "Interactions.EVENT_TYPE cannot be compared with CurrentItem")
        if isinstance(operand, Literals) and any(isinstance(v, Number) for v in operand.values):
            raise _fail(condition, 'event types are quoted strings, e.g. ("click", "stream")')
        return
    kind = _field_kind(condition, ref, fields)
    if not operator.is_membership and kind is not FieldKind.NUMERICAL:
        raise _fail(condition, f"{ref} is {kind}; {operator} compares numbers, use IN or NOT IN")
    if isinstance(operand, FieldRef):
        if ref.dataset not in (Dataset.ITEMS,):
            raise _fail(condition, f"CurrentItem can be compared only with Items fields, not {ref}")
        other = _field_kind(condition, operand, fields)
        if operator.is_membership and other is not kind:
            raise _fail(condition, f"{ref} ({kind}) cannot be matched against {operand} ({other})")
        if not operator.is_membership and other is not FieldKind.NUMERICAL:
            raise _fail(condition, f"{operand} is {other}; {operator} compares numbers")
    if isinstance(operand, Literals) and kind is FieldKind.NUMERICAL and operator.is_membership:
        for value in operand.values:
            if isinstance(value, str) and not _is_number(value):
                raise _fail(condition, f"{ref} is numerical; {value!r} is not a number")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def check_filter_expression(expression: FilterExpression, *, fields: SchemaFields) -> FilterExpression:
    """Apply Personalize's schema rules to a parsed filter; raises FilterError naming position and field."""
    targets = {part.target for part in expression.parts}
    if len(targets) > 1:
        part = next(p for p in expression.parts if p.target is not expression.parts[0].target)
        raise FilterError(
            f"position {part.position}: every expression of a filter must filter the same thing "
            f"({expression.parts[0].target} or {part.target}, not both)"
        )
    used: set[str] = set()
    for part in expression.parts:
        allowed = WHERE_DATASETS[part.target]
        first = next(part.conditions())
        for condition in part.conditions():
            dataset = condition.ref.dataset
            if dataset not in allowed:
                if dataset is Dataset.USERS:
                    hint = "Users fields are for UserID filters; use IF CurrentUser.FIELD for items"
                else:
                    hint = "Items fields are for ItemID filters"
                raise _fail(condition, f"{condition.ref} cannot filter {part.target}: {hint}")
            if dataset is not first.ref.dataset:
                raise _fail(
                    condition,
                    f"{condition.ref}: conditions joined by AND/OR must use the dataset of the first "
                    f"condition ({first.ref.dataset}); join expressions on other datasets with |",
                )
            _check_condition(condition, fields)
            used.add(str(condition.ref))
            if isinstance(condition.operand, FieldRef):
                used.add(f"Items.{condition.operand.field}")
        if part.gate and part.target is not Target.ITEM:
            raise _fail(part.gate[0], "IF CurrentUser conditions are for ItemID filters")
        for condition in part.gate:
            if isinstance(condition.operand, FieldRef):
                raise _fail(
                    condition, "IF conditions compare CurrentUser fields with values, not CurrentItem"
                )
            _check_condition(condition, fields)
            used.add(f"Users.{condition.ref.field}")
    if len(used) > MAX_FILTER_FIELDS:
        raise FilterError(
            f"the filter uses {len(used)} distinct dataset fields; the limit is {MAX_FILTER_FIELDS}"
        )
    return expression
