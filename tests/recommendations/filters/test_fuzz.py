"""Fuzzing the parser: any text either parses or raises FilterSyntaxError, never anything else."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommendations.errors import FilterSyntaxError
from recommendations.filters.parser import FilterExpression, parse_filter_expression

WORDS = [
    "INCLUDE",
    "EXCLUDE",
    "include",
    "ItemID",
    "UserID",
    "ActionID",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IF",
    "Items.GENRE",
    "Items.PRICE",
    "Interactions.EVENT_TYPE",
    "Users.AGE",
    "CurrentUser.AGE",
    "CurrentItem.GENRE",
    "Items.",
    ".",
    "(",
    ")",
    ",",
    "|",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "!",
    "<>",
    '"click"',
    '"*"',
    '"a\\"b"',
    '"unterminated',
    "$GENRE",
    "$",
    "18",
    "-3.5",
    "1e999",
    "1e5",
    ".5",
    "*",
    "\n",
    " ",
    "\t",
    "NaN",
    "Infinity",
    "\\",
    "'x'",
    "((((",
    "))))",
]


def check_parse(text: str) -> None:
    try:
        result = parse_filter_expression(text)
    except FilterSyntaxError as error:
        assert error.position >= 1 and error.line >= 1 and error.column >= 1
        assert str(error).startswith("position ")
        return
    assert isinstance(result, FilterExpression) and result.parts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text_parses_or_raises_a_syntax_error(text: str) -> None:
    # Given any text / When parsed / Then an AST or a FilterSyntaxError, nothing else
    check_parse(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join))
def test_grammar_shaped_token_soup_parses_or_raises_a_syntax_error(text: str) -> None:
    # Given a sequence of the language's own words in random order / When parsed / Then AST or syntax error
    check_parse(text)


VALID = [
    'INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("watch") AND Items.CATEGORY_L2 IN ("luxury") IF CurrentUser.AGE > 18',  # noqa: E501
    'INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',  # noqa: E501
    "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID),
    st.integers(min_value=0, max_value=200),
    st.integers(min_value=0, max_value=5),
    st.text(max_size=4),
)
def test_near_misses_of_valid_expressions_parse_or_raise_a_syntax_error(
    text: str, at: int, cut: int, insert: str
) -> None:
    # Given a documented expression with a few characters cut or inserted / When parsed / Then AST or syntax error  # noqa: E501
    at = at % (len(text) + 1)
    check_parse(text[:at] + insert + text[at + cut :])


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=3000))
def test_deep_nesting_is_a_syntax_error_not_a_crash(depth: int) -> None:
    # Given deeply nested parentheses / When parsed / Then AST or syntax error (never RecursionError)
    check_parse("INCLUDE ItemID WHERE " + "(" * depth + 'Items.A IN ("a")' + ")" * depth)
