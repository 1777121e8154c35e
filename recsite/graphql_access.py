"""Who may run which GraphQL operation: declared here once and enforced by one schema extension.

Every root field (query or mutation) needs a scope: `OPERATION_SCOPES` names the few that need
less than `manage`; every other field, including one added tomorrow or one that does not exist,
needs `manage`. Fields listed in RECSITE_PUBLIC_OPERATIONS need nothing. `AccessControl` checks
the operation's root fields right after parsing, before validation: an unauthorised caller gets
UNAUTHENTICATED (no credentials) or FORBIDDEN (credentials without the scope) and learns nothing
about argument names, types or whether a field exists.

When RECSITE_USER_TOKEN_SECRET is set, a public field called without the field's scope that
names a `userId` must carry that user's signed token (access/user_tokens.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
)
from graphql.language import FragmentDefinitionNode
from strawberry.extensions import SchemaExtension

from access.authentication import (
    InvalidCredentialsError,
    Principal,
    anonymous_principal,
    principal_for_request,
)
from access.models import MANAGE, RECOMMEND, TRACK
from access.user_tokens import USER_TOKEN_HEADER, user_token_valid, user_tokens_required
from recsite.graphql_view import FORBIDDEN, UNAUTHENTICATED

__all__ = [
    "FORBIDDEN",
    "OPERATION_SCOPES",
    "UNAUTHENTICATED",
    "AccessControl",
    "check_public_operations",
    "required_scope",
    "root_field_nodes",
]


# The scope each root field needs when it is not public; any field not named here needs `manage`.
OPERATION_SCOPES: Mapping[str, str] = {
    "recommendations": RECOMMEND,
    "relatedItems": RECOMMEND,
    "personalizedRanking": RECOMMEND,
    "putEvents": TRACK,
}
_USER_ID_ARGUMENT = "userId"


def required_scope(field_name: str) -> str:
    """The scope a root field needs when it is not public (`manage` unless OPERATION_SCOPES says less)."""
    return OPERATION_SCOPES.get(field_name, MANAGE)


def check_public_operations(root_fields: set[str]) -> None:
    """Refuse to start when RECSITE_PUBLIC_OPERATIONS names a field the schema does not have (a typo)."""
    unknown = sorted(set(settings.RECSITE_PUBLIC_OPERATIONS) - root_fields)
    if unknown:
        raise ImproperlyConfigured(
            f"RECSITE_PUBLIC_OPERATIONS names {', '.join(unknown)}, which the GraphQL schema does not have; "
            f"root fields are: {', '.join(sorted(root_fields))}"
        )


def _operations(document: DocumentNode, operation_name: str | None) -> list[OperationDefinitionNode]:
    operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
    chosen = [
        node
        for node in operations
        if operation_name is None or (node.name is not None and node.name.value == operation_name)
    ]
    return chosen if len(chosen) == 1 else operations  # ambiguous or unknown: check them all


def root_field_nodes(
    document: DocumentNode, operation_name: str | None = None
) -> Iterator[tuple[OperationDefinitionNode, FieldNode]]:
    """The root fields the chosen operation selects, through fragments and inline fragments."""
    fragments = {
        node.name.value: node for node in document.definitions if isinstance(node, FragmentDefinitionNode)
    }
    for operation in _operations(document, operation_name):
        seen: set[str] = set()
        pending: list[SelectionSetNode] = [operation.selection_set]
        while pending:
            for selection in pending.pop().selections:
                if isinstance(selection, FieldNode):
                    yield operation, selection
                elif isinstance(selection, InlineFragmentNode):
                    pending.append(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    if name not in seen and name in fragments:
                        seen.add(name)
                        pending.append(fragments[name].selection_set)


def _argument_value(
    operation: OperationDefinitionNode, field: FieldNode, name: str, variables: Mapping[str, Any]
) -> object:
    """The raw value of a field's argument (a literal, or a variable's value or default); None if absent."""
    for argument in field.arguments:
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, StringValueNode):
            return value.value
        if isinstance(value, VariableNode):
            variable = value.name.value
            if variable in variables:
                return variables[variable]
            for definition in operation.variable_definitions:
                if definition.variable.name.value == variable and isinstance(
                    definition.default_value, StringValueNode
                ):
                    return definition.default_value.value
        return None
    return None


def _refusal(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def _request(context: object) -> HttpRequest | None:
    request = context.get("request") if isinstance(context, Mapping) else getattr(context, "request", None)
    return request if isinstance(request, HttpRequest) else None


def _principal(request: HttpRequest | None) -> Principal:
    if request is None:  # schema.execute_sync without a request: nobody
        return anonymous_principal(None)
    try:
        return principal_for_request(request)
    except InvalidCredentialsError as error:
        raise _refusal(str(error), UNAUTHENTICATED) from error


class AccessControl(SchemaExtension):
    """Refuse the operation before validation when a root field needs a scope the caller lacks."""

    def on_validate(self) -> Iterator[None]:
        """Check every root field of the operation; raise the first refusal (validation then never runs)."""
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            self.check(document, context.operation_name, context.variables or {}, _request(context.context))
        yield

    @staticmethod
    def check(
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any],
        request: HttpRequest | None,
    ) -> None:
        """Raise a coded GraphQLError unless the caller may run every root field the operation selects."""
        public = frozenset(settings.RECSITE_PUBLIC_OPERATIONS)
        principal: Principal | None = None
        for operation, field in root_field_nodes(document, operation_name):
            name = field.name.value
            if name.startswith("__"):  # __typename; introspection is governed by its own setting
                continue
            principal = principal or _principal(request)
            scope = required_scope(name)
            if principal.has_scope(scope):
                continue
            if name in public:
                if user_tokens_required():
                    _check_user_token(operation, field, variables, request)
                continue
            if principal.is_anonymous:
                hint = f" ({principal.note})" if principal.note else ""
                raise _refusal(
                    f"`{name}` needs credentials: an API key (Authorization: Bearer <key>) with the "
                    f"`{scope}` scope, or a staff session{hint}.",
                    UNAUTHENTICATED,
                )
            raise _refusal(f"`{name}` needs the `{scope}` scope, which these credentials lack.", FORBIDDEN)


def _check_user_token(
    operation: OperationDefinitionNode,
    field: FieldNode,
    variables: Mapping[str, Any],
    request: HttpRequest | None,
) -> None:
    user_id = _argument_value(operation, field, _USER_ID_ARGUMENT, variables)
    if user_id is None:
        return
    token = request.headers.get(USER_TOKEN_HEADER) if request is not None else None
    if not isinstance(user_id, str) or not user_token_valid(user_id, token):
        raise _refusal(
            f"`{field.name.value}` with a userId needs that user's signed token in the {USER_TOKEN_HEADER} "
            "header (or an API key).",
            FORBIDDEN,
        )
