"""personalize-runtime over the local engine: GetRecommendations and GetPersonalizedRanking.

Each operation reads Personalize's request members, calls `recommendations.serving` and renders
its `ServedList` as Personalize's `PredictedItem`s (`itemId`, `score`, `promotionName`,
`reason` as a one-sentence list, `metadata` for the requested Items columns, joined from the
catalog in one query). A campaign serving a related-items recipe answers `itemId` requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from catalog.models import DatasetSchema, Item
from catalog.schemas import DatasetType, fields_from_json, format_value
from recommendations import serving
from recommendations.compat.protocol import Fields, filter_values, invalid, resource_name
from recommendations.models import Campaign
from recommendations.selectors import MAX_NUM_RESULTS

__all__ = [
    "MAX_METADATA_COLUMNS",
    "MAX_RESULTS_WITH_METADATA",
    "get_personalized_ranking",
    "get_recommendations",
]

MAX_METADATA_COLUMNS = 10
MAX_RESULTS_WITH_METADATA = 50
MAX_REASON_LENGTH = 256
CREATION_TIMESTAMP = "CREATION_TIMESTAMP"


def _campaign_name(body: Fields) -> str:
    if body.data.get("recommenderArn") is not None:
        arn = body.string("recommenderArn", max_length=256)
        raise invalid(f"recommenderArn {arn!r}: Recsite serves campaigns only; pass campaignArn")
    return resource_name(body.string("campaignArn", required=True) or "", "campaign", "campaignArn")


def _filter(body: Fields) -> tuple[str | None, dict[str, list[str]] | None]:
    arn = body.string("filterArn")
    values = filter_values(body.string_map("filterValues"), body.where("filterValues"))
    return (resource_name(arn, "filter", body.where("filterArn")) if arn else None), values


def _metadata_columns(body: Fields) -> list[str] | None:
    columns = body.object("metadataColumns")
    if columns is None:
        return None
    if set(columns.data) != {"ITEMS"}:
        raise invalid('metadataColumns takes one key, "ITEMS", with a list of Items dataset columns')
    names = columns.strings("ITEMS", required=True, max_items=MAX_METADATA_COLUMNS) or []
    if any(not 1 <= len(name) <= 150 for name in names):
        raise invalid("metadataColumns.ITEMS: column names are 1 to 150 characters long")
    return names or None


def _context(body: Fields) -> dict[str, str] | None:
    return body.string_map("context")


def _promotion(body: Fields) -> serving.PromotionSpec | None:
    promotions = body.objects("promotions", max_items=1)
    if not promotions:
        return None
    promotion = promotions[0]
    name, values = _filter(promotion)
    if name is None:
        raise invalid(f"{promotion.where('filterArn')} is required")
    return serving.PromotionSpec(
        name=promotion.string("name", required=True, max_length=63) or "",
        percent_promoted_items=promotion.integer("percentPromotedItems", required=True) or 0,
        filter_name=name,
        filter_values=values,
    )


def _recipe(campaign_name: str) -> str | None:
    found = Campaign.objects.filter(name=campaign_name).values_list(
        "solution_version__solution__recipe", flat=True
    )
    return next(iter(found), None)


def _metadata_fields(campaign_name: str, columns: Sequence[str] | None) -> dict[str, str] | None:
    """{requested column: Items schema field} for the campaign's dataset group, checked before serving."""
    if not columns:
        return None
    raw = (
        DatasetSchema.objects.filter(
            dataset_group__campaigns__name=campaign_name, dataset_type=DatasetType.ITEMS
        )
        .values_list("fields", flat=True)
        .first()
    )
    if raw is None:  # an unknown campaign (refused by serving) or a group without an Items schema
        return {column: column for column in columns}
    known = {spec.name.upper(): spec.name for spec in fields_from_json(raw) if spec.is_metadata}
    known[CREATION_TIMESTAMP] = CREATION_TIMESTAMP
    fields: dict[str, str] = {}
    for column in columns:
        field = known.get(column.upper())
        if field is None:
            listed = ", ".join(sorted(known.values()))
            raise invalid(f"metadataColumns: the Items dataset has no column {column!r} (columns: {listed})")
        fields[column] = field
    return fields


def _metadata(served: serving.ServedList, fields: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """{item id: {column: value}} of the listed items, in one catalog query.

    Reading whole metadata objects measured faster than extracting the keys in SQL (SQLite).
    """
    rows = Item.objects.filter(
        dataset_group_id=served.dataset_group_id, item_id__in=[item.item_id for item in served.items]
    ).values_list("item_id", "metadata", "creation_timestamp")
    found: dict[str, dict[str, str]] = {}
    for item_id, metadata, created in rows:
        values = {**metadata, CREATION_TIMESTAMP: int(created.timestamp()) if created else None}
        found[item_id] = {
            column: format_value(values[field])
            for column, field in fields.items()
            if values.get(field) is not None
        }
    return found


def _item_list(served: serving.ServedList, columns: Mapping[str, str] | None) -> list[dict[str, Any]]:
    metadata = _metadata(served, columns) if columns else {}
    answer = []
    for item, reason in zip(served.items, served.reasons(), strict=True):
        entry: dict[str, Any] = {"itemId": item.item_id}
        if item.score is not None:
            entry["score"] = float(item.score)
        if item.promotion_name:
            entry["promotionName"] = item.promotion_name
        if columns:
            entry["metadata"] = metadata.get(item.item_id, {})
        if reason:
            entry["reason"] = [reason[:MAX_REASON_LENGTH]]
        answer.append(entry)
    return answer


def get_recommendations(body: Fields) -> Mapping[str, Any]:
    """GetRecommendations: a user's list, or with `itemId` on a related-items campaign, related items."""
    campaign = _campaign_name(body)
    user_id = body.string("userId")
    item_id = body.string("itemId")
    num_results = body.integer("numResults")
    columns = _metadata_columns(body)
    if columns and num_results is not None and num_results > MAX_RESULTS_WITH_METADATA:
        raise invalid(f"numResults may be at most {MAX_RESULTS_WITH_METADATA} when metadataColumns is given")
    filter_name, values = _filter(body)
    context = _context(body)
    promotion = _promotion(body)
    fields = _metadata_fields(campaign, columns)
    if item_id is not None and _recipe(campaign) in serving.RELATED_RECIPES:
        if promotion is not None:
            raise invalid("promotions apply to user recommendations, not to related items")
        served = serving.related_item_list(
            item_id=item_id,
            user_id=user_id,
            campaign_name=campaign,
            num_results=25 if num_results is None else num_results,
            filter_name=filter_name,
            filter_values=values,
        )
    else:
        served = serving.recommendation_list(
            campaign_name=campaign,
            user_id=user_id,
            num_results=25 if num_results is None else num_results,
            filter_name=filter_name,
            filter_values=values,
            context=context,
            promotion=promotion,
        )
    return {"itemList": _item_list(served, fields), "recommendationId": served.recommendation_id}


def get_personalized_ranking(body: Fields) -> Mapping[str, Any]:
    """GetPersonalizedRanking: `inputList` re-ordered for `userId`."""
    campaign = _campaign_name(body)
    user_id = body.string("userId", required=True)
    columns = _metadata_columns(body)
    limit = MAX_RESULTS_WITH_METADATA if columns else MAX_NUM_RESULTS
    item_ids = body.strings("inputList", required=True, max_items=limit) or []
    filter_name, values = _filter(body)
    fields = _metadata_fields(campaign, columns)
    served = serving.personalized_ranking(
        user_id=user_id,
        item_ids=item_ids,
        campaign_name=campaign,
        filter_name=filter_name,
        filter_values=values,
        context=_context(body),
    )
    return {"personalizedRanking": _item_list(served, fields), "recommendationId": served.recommendation_id}
