"""The GraphQL schema: the apps' Query types merged, the root Mutation, the shared extensions installed.

Extensions are passed as classes or factories so each request gets fresh instances
(strawberry keeps per-request state on them). The validation-rule limiters are built
once and their rule classes reused, so ValidationCache can recognise a query it has
already validated.
"""

from collections.abc import Callable, Sequence

import strawberry
from django.conf import settings
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry_django.optimizer import DjangoOptimizerExtension

from catalog.graphql.schema import Query as CatalogQuery
from recommendations.graphql.schema import Mutation
from recommendations.graphql.schema import Query as RecommendationsQuery
from recsite.graphql_access import AccessControl, check_public_operations
from recsite.graphql_view import INTERNAL_SERVER_ERROR, annotate_errors, error_code

__all__ = ["Mutation", "Query", "RecsiteSchema", "build_schema", "schema"]

Query = merge_types("Query", (CatalogQuery, RecommendationsQuery))


def _with_rules(rules: Sequence[type[ASTValidationRule]]) -> Callable[[], SchemaExtension]:
    """A factory of a fresh extension adding these (shared) validation rule classes."""
    shared = list(rules)
    return lambda: AddValidationRules(shared)


class RecsiteSchema(strawberry.Schema):
    """strawberry's Schema that codes every error and logs only our own failures."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors (not the client's mistakes), then set each error's extensions.code.

        strawberry calls this for every error of every phase (parsing, validation,
        execution), so no error leaves without a code.
        """
        unexpected = [error for error in errors if error_code(error) == INTERNAL_SERVER_ERROR]
        if unexpected:
            super().process_errors(unexpected, execution_context)
        annotate_errors(errors)


class QuerySetOptimizer(DjangoOptimizerExtension):
    """strawberry-django's optimizer without its per-field middleware.

    strawberry-django fields optimize their querysets themselves (through the optimizer this
    extension installs for the operation), and our own resolvers call `optimize` where they
    build a queryset; the inherited `resolve` hook would otherwise wrap every field of every
    response (200 fields for a list of 25 items) only to look for querysets returned by plain
    resolvers, which this schema doesn't have.
    """

    resolve = SchemaExtension.resolve


def build_schema(*, debug: bool) -> strawberry.Schema:
    """The schema with its extensions; introspection and field suggestions are off unless `debug`.

    AccessControl comes before every validating extension: it refuses an operation the caller
    may not run before validation looks at the arguments (recsite/graphql_access.py).
    """
    limits = [
        QueryDepthLimiter(max_depth=settings.RECSITE_GRAPHQL_MAX_DEPTH),
        MaxAliasesLimiter(max_alias_count=settings.RECSITE_GRAPHQL_MAX_ALIASES),
    ]
    if not debug:
        limits.append(DisableIntrospection())
    max_tokens: int = settings.RECSITE_GRAPHQL_MAX_TOKENS
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        ParserCache,
        AccessControl,
        _with_rules([rule for limit in limits for rule in limit.validation_rules]),
        ValidationCache,
        QuerySetOptimizer,
    ]
    config = StrawberryConfig(disable_field_suggestions=not debug)
    built = RecsiteSchema(query=Query, mutation=Mutation, extensions=extensions, config=config)
    root_fields = {
        name
        for root in (built._schema.query_type, built._schema.mutation_type)
        if root is not None
        for name in root.fields
    }
    check_public_operations(root_fields)
    return built


schema = build_schema(debug=settings.DEBUG)
