"""GraphQL mutation deleteUserData: a user's data removed here, and on Personalize by a deletion job.

It needs the `manage` scope, as every operation recsite/graphql_access.py does not name. The
resolver only finds out who is asking (for the audit record) and calls
`recommendations.data_deletion.user_data_delete`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from django.http import HttpRequest
from strawberry.types import Info

from access.authentication import API_KEY_KIND, SESSION_KIND, principal_for_request
from access.models import ApiKey
from catalog.models import DEFAULT_DATASET_GROUP
from catalog.selectors import dataset_group_get
from recommendations.data_deletion import user_data_delete
from recommendations.models import UserDataDeletion

__all__ = ["DataDeletionMutation", "UserDataDeletionType", "requester"]


@strawberry.type(name="UserDataDeletion", description="What deleteUserData removed, and Personalize's job.")
class UserDataDeletionType:
    """The audit record of one deletion."""

    user_id: str
    dataset_group: str
    requested_by: str
    requested_at: datetime
    profile_deleted: bool = strawberry.field(description="Whether the user had a profile (putUsers/import).")
    interactions_deleted: int = strawberry.field(
        description="Their events, their sessions' anonymous events, events of a sessionId equal to userId."
    )
    recommendation_records_deleted: int
    personalize_status: str | None = strawberry.field(
        description="CreateDataDeletionJob's status (PENDING, IN_PROGRESS, COMPLETED, FAILED); null when "
        "the dataset group is not on Personalize."
    )

    @classmethod
    def from_model(cls, row: UserDataDeletion) -> UserDataDeletionType:
        """The GraphQL view of an audit row."""
        return cls(
            user_id=row.user_id,
            dataset_group=row.dataset_group_name,
            requested_by=row.requested_by,
            requested_at=row.requested_at,
            profile_deleted=row.profile_deleted,
            interactions_deleted=row.interactions_deleted,
            recommendation_records_deleted=row.recommendation_records_deleted,
            personalize_status=row.personalize_status or None,
        )


def requester(request: HttpRequest | None) -> str:
    """Who made a request, for audit records: `api key <id> (<name>)`, `staff user <name>`, or `unknown`."""
    if request is None:
        return "unknown"
    principal = principal_for_request(request)
    if principal.kind == API_KEY_KIND:
        name = ApiKey.objects.filter(key_id=principal.key_id).values_list("name", flat=True).first()
        return f"api key {principal.key_id}" + (f" ({name})" if name else "")
    if principal.kind == SESSION_KIND:
        return f"staff user {request.user.get_username()}"
    return principal.kind


@strawberry.type
class DataDeletionMutation:
    """Deleting an end user's data (manage)."""

    @strawberry.mutation(
        description="Delete a user's profile, interactions and recommendation records now (their history "
        "stops counting on the next request) and, on Personalize, start a CreateDataDeletionJob. "
        "Audit-logged."
    )
    def delete_user_data(
        self,
        info: Info,
        user_id: str,
        dataset_group: Annotated[
            str | None, strawberry.argument(description="The dataset group; `default` when omitted.")
        ] = None,
    ) -> UserDataDeletionType:
        """deleteUserData."""
        request = info.context.get("request") if isinstance(info.context, dict) else info.context.request
        group = dataset_group_get(name=dataset_group or DEFAULT_DATASET_GROUP)
        deletion = user_data_delete(
            dataset_group=group,
            user_id=user_id,
            requested_by=requester(request),
            requested_via="graphql",
        )
        return UserDataDeletionType.from_model(deletion)
