"""Parsing Personalize filter expressions into the AST, syntax errors with positions, and schema checks."""

import pytest

from catalog.schemas import FieldKind
from recommendations.errors import FilterError, FilterSyntaxError
from recommendations.filters.parser import (
    Action,
    AllOf,
    AnyOf,
    Condition,
    Dataset,
    FieldRef,
    Literals,
    Number,
    Operator,
    Placeholder,
    Target,
    check_filter_expression,
    parse_filter_expression,
)

FIELDS = {
    Dataset.ITEMS: {
        "GENRE": FieldKind.CATEGORICAL,
        "CATEGORY_L1": FieldKind.CATEGORICAL,
        "CATEGORY_L2": FieldKind.CATEGORICAL,
        "PRICE": FieldKind.NUMERICAL,
        "CREATION_TIMESTAMP": FieldKind.NUMERICAL,
        "DESCRIPTION": FieldKind.TEXTUAL,
        "IN_STOCK": FieldKind.BOOLEAN,
    },
    Dataset.USERS: {"AGE": FieldKind.NUMERICAL, "MEMBERSHIP_STATUS": FieldKind.CATEGORICAL},
    Dataset.INTERACTIONS: {"EVENT_TYPE": FieldKind.STRING},
}

DOCUMENTED_EXAMPLES = [
    "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EVENT_TYPE)",
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
    'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
    'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
    "EXCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)",
    "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE",
    'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("shoe") AND Items.CATEGORY_L2 NOT IN ("boot")',
    "INCLUDE ItemID WHERE Items.PRICE <= $PRICE",
    "INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < $DATE",
    "EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE) IF CurrentUser.AGE = $AGE",
    'INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("watch") AND Items.CATEGORY_L2 IN ("luxury") IF CurrentUser.AGE > 18',  # noqa: E501
    "EXCLUDE ItemID WHERE Items.NUMBER_OF_DOWNLOADS < 20 IF CurrentUser.AGE > 18 AND CurrentUser.AGE < 30",
    "INCLUDE UserID WHERE Users.MEMBERSHIP_STATUS IN ($MEMBERSHIP)",
    "EXCLUDE UserID WHERE Users.AGE < $AGE",
    'INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("favorite")',  # noqa: E501
    'INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',  # noqa: E501
]


@pytest.mark.parametrize("text", DOCUMENTED_EXAMPLES)
def test_every_documented_example_parses(text: str) -> None:
    # Given an expression copied from Personalize's developer guide / When it is parsed
    expression = parse_filter_expression(text)
    # Then it gives one part per `|`-joined expression
    assert len(expression.parts) == text.count(" | ") + 1


def test_an_interaction_exclusion_becomes_a_typed_ast() -> None:
    # Given the documented click/stream exclusion / When it is parsed
    expression = parse_filter_expression(
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")'
    )
    # Then the AST says exactly that
    (part,) = expression.parts
    assert (part.action, part.target, part.gate) == (Action.EXCLUDE, Target.ITEM, ())
    assert part.where == Condition(
        FieldRef(Dataset.INTERACTIONS, "EVENT_TYPE"), Operator.IN, Literals(("click", "stream")), 22
    )


def test_the_if_clause_gates_on_current_user_and_and_binds_tighter_than_or() -> None:
    # Given conditions mixing AND and OR, and an IF with two CurrentUser conditions
    text = (
        'include itemid where Items.GENRE IN ("a") OR Items.GENRE IN ("b") AND Items.PRICE >= 10 '
        "IF CurrentUser.AGE > 18 AND CurrentUser.AGE < $MAX"
    )
    # When it is parsed (keywords in lower case)
    (part,) = parse_filter_expression(text).parts
    # Then AND groups first, OR joins, and the gate keeps both user conditions
    assert isinstance(part.where, AnyOf)
    assert isinstance(part.where.terms[1], AllOf)
    assert [c.ref for c in part.gate] == [FieldRef(Dataset.CURRENT_USER, "AGE")] * 2
    assert part.gate[0].operand == Literals((Number(18.0, "18"),))
    assert part.gate[1].operand == Placeholder("MAX")


def test_parentheses_group_conditions() -> None:
    # Given parentheses around an OR / When parsed
    (part,) = parse_filter_expression(
        'INCLUDE ItemID WHERE (Items.GENRE IN ("a") OR Items.GENRE IN ("b")) AND Items.PRICE > 1'
    ).parts
    # Then the OR is one operand of the AND
    assert isinstance(part.where, AllOf) and isinstance(part.where.terms[0], AnyOf)


def test_current_item_string_escapes_and_placeholders_are_recognised() -> None:
    # Given a CurrentItem reference, an escaped quote and a placeholder
    expression = parse_filter_expression(
        'INCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE AND Items.GENRE NOT IN ("say \\"hi\\"", 3) '
        "| EXCLUDE ItemID WHERE Items.PRICE > $LIMIT"
    )
    # Then each operand has its type, and placeholders are listed without `$`
    first, second = expression.parts[0].where.terms
    assert first.operand == FieldRef(Dataset.CURRENT_ITEM, "GENRE")
    assert second.operand == Literals(('say "hi"', Number(3.0, "3")))
    assert expression.placeholders == ("LIMIT",)
    assert expression.required_placeholders == ()


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        (
            "INCLUDE ItemID WHERE Items.GENRE",
            33,
            "expected IN, NOT IN, =, !=, <, <=, > or >= after Items.GENRE",
        ),
        ('INCLUDE ItemID WHERE Items.GENRE IS ("a")', 34, "expected IN, NOT IN, =, !=, <, <=, > or >="),
        ('INCLUDES ItemID WHERE Items.GENRE IN ("a")', 1, "expected INCLUDE or EXCLUDE"),
        ('INCLUDE Item WHERE Items.GENRE IN ("a")', 9, "expected ItemID or UserID after INCLUDE"),
        ('INCLUDE ItemID Items.GENRE IN ("a")', 16, "expected WHERE after ItemID"),
        ('INCLUDE ItemID WHERE Products.GENRE IN ("a")', 22, "expected Items.FIELD"),
        ('INCLUDE ItemID WHERE Items.GENRE IN ("a",)', 42, 'expected a "quoted string" or a number'),
        ('INCLUDE ItemID WHERE Items.GENRE IN ("a"', 41, "expected , or )"),
        ('INCLUDE ItemID WHERE Items.PRICE > "cheap"', 36, "expected a number, $PLACEHOLDER or CurrentItem"),
        ('INCLUDE ItemID WHERE Items.GENRE IN ("a") |', 44, "expected INCLUDE or EXCLUDE"),
        ('INCLUDE ItemID WHERE Items.GENRE IN ("a") IF Items.PRICE > 3', 46, "expected CurrentUser.FIELD"),
        ("INCLUDE ItemID WHERE Items.GENRE NOT IN ($GENRE)", 22, "placeholders are not allowed with NOT IN"),
        ('INCLUDE ItemID WHERE Items.GENRE IN ("a") \n  AND', 49, "expected Items.FIELD"),
        ("", 1, "a filter expression is required"),
    ],
)
def test_invalid_text_is_refused_with_the_position_and_what_was_expected(
    text: str, position: int, expected: str
) -> None:
    # Given invalid expression text / When it is parsed
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter_expression(text)
    # Then the error names the 1-based position and what the grammar expected there
    assert caught.value.position == position
    assert expected in str(caught.value)
    assert str(caught.value).startswith(f"position {position} (line ")


def test_a_syntax_error_on_a_later_line_reports_line_and_column() -> None:
    # Given an error on the second line / When parsed
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter_expression('INCLUDE ItemID WHERE Items.GENRE IN ("a")\nAND Items.PRICE >')
    # Then line and column point at it
    assert (caught.value.line, caught.value.column) == (2, 18)


def test_an_expression_over_personalize_length_limit_is_refused() -> None:
    # Given 2501 characters / When parsed / Then refused
    text = "INCLUDE ItemID WHERE Items.GENRE IN (" + ", ".join(['"a"'] * 700) + ")"
    with pytest.raises(FilterSyntaxError, match="limit is 2500"):
        parse_filter_expression(text)


def check(text: str) -> None:
    check_filter_expression(parse_filter_expression(text), fields=FIELDS)


@pytest.mark.parametrize(
    "text",
    [
        'INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("watch") AND Items.CATEGORY_L2 IN ("luxury") IF CurrentUser.AGE > 18',  # noqa: E501
        'INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',  # noqa: E501
        "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE",
        "INCLUDE UserID WHERE Users.MEMBERSHIP_STATUS IN ($MEMBERSHIP)",
        'INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("purchase")',
        "INCLUDE ItemID WHERE Items.PRICE IN (10, 20) AND Items.CREATION_TIMESTAMP > $DATE",
    ],
)
def test_valid_expressions_pass_the_schema_checks(text: str) -> None:
    # Given a valid filter for these schemas / When checked / Then no error
    check(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('INCLUDE ItemID WHERE Items.COLOUR IN ("red")', "position 22: unknown field Items.COLOUR"),
        ('INCLUDE ItemID WHERE Items.genre IN ("red")', "did you mean GENRE?"),
        ('INCLUDE ItemID WHERE Items.DESCRIPTION IN ("x")', "textual fields cannot be filtered"),
        ('INCLUDE ItemID WHERE Items.IN_STOCK IN ("true")', "booleans cannot be filtered"),
        ("INCLUDE ItemID WHERE Items.GENRE > 3", "Items.GENRE is categorical; > compares numbers"),
        ('INCLUDE ItemID WHERE Interactions.TIMESTAMP IN ("1")', "only Interactions.EVENT_TYPE"),
        ("INCLUDE ItemID WHERE Interactions.EVENT_TYPE = 3", "takes IN or NOT IN"),
        ('INCLUDE ItemID WHERE Users.AGE IN ("3")', "Users fields are for UserID filters"),
        ('INCLUDE UserID WHERE Items.GENRE IN ("a")', "Items fields are for ItemID filters"),
        (
            'INCLUDE ItemID WHERE Items.GENRE IN ("a") AND Interactions.EVENT_TYPE IN ("click")',
            "must use the dataset of the first condition (Items)",
        ),
        ('INCLUDE ItemID WHERE Items.GENRE IN ("a") | INCLUDE UserID WHERE Users.AGE > 3', "same thing"),
        (
            "INCLUDE UserID WHERE Users.AGE > 3 IF CurrentUser.AGE > 3",
            "IF CurrentUser conditions are for ItemID",
        ),
        ('INCLUDE ItemID WHERE Items.PRICE IN ("cheap")', "'cheap' is not a number"),
        ("INCLUDE ItemID WHERE Items.GENRE IN CurrentItem.PRICE", "cannot be matched against"),
        (
            'INCLUDE ItemID WHERE Items.GENRE IN ("a") IF CurrentUser.HEIGHT > 3',
            "unknown field CurrentUser.HEIGHT",
        ),
    ],
)
def test_schema_violations_are_refused_naming_position_and_field(text: str, message: str) -> None:
    # Given an expression that parses but breaks a Personalize rule / When checked
    with pytest.raises(FilterError) as caught:
        check(text)
    # Then the error says which rule and where
    assert message in str(caught.value)
    assert not isinstance(caught.value, FilterSyntaxError)


def test_unknown_field_errors_list_the_known_fields() -> None:
    # Given an unknown Items field / When checked / Then the known ones are listed
    with pytest.raises(FilterError, match="known Items fields: CATEGORY_L1, CATEGORY_L2, CREATION_TIMESTAMP"):
        check('INCLUDE ItemID WHERE Items.COLOUR IN ("red")')
