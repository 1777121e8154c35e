"""Amazon Personalize's filter expression language: grammar, parser (typed AST) and numpy evaluator."""

from recommendations.filters.evaluator import (
    CategoricalColumn,
    EvaluationInput,
    NumericColumn,
    RecentInteractions,
    filter_mask,
)
from recommendations.filters.parser import (
    Dataset,
    FilterExpression,
    Target,
    check_filter_expression,
    parse_filter_expression,
)

__all__ = [
    "CategoricalColumn",
    "Dataset",
    "EvaluationInput",
    "FilterExpression",
    "NumericColumn",
    "RecentInteractions",
    "Target",
    "check_filter_expression",
    "filter_mask",
    "parse_filter_expression",
]
