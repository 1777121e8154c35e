"""Why an item was recommended, in one sentence a shop owner understands.

Serving decides *what kind* of reason each item has while it still holds the model's answer
(`Explanation`: the history item that adds most to the score, a popularity fallback, an
exploration pick, a promotion, ...); `reason_texts` turns those into sentences with one query
for the names they mention. An item is named by its title-like field: a metadata field called
TITLE / NAME / PRODUCT_NAME (or ending in _TITLE / _NAME), else the first sentence of the first
textual field (the demo's PRODUCT_DESCRIPTION starts with the product name), else its id.
"Popular in ..." names the item's top category (CATEGORY_L1, CATEGORY, GENRE(S), ...; the first
value of a `|` multi-value).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django.db import connection

from catalog.models import DatasetSchema, Item
from catalog.schemas import DatasetType, FieldKind, FieldSpec, fields_from_json

__all__ = [
    "Explanation",
    "ItemLabelFields",
    "ReasonKind",
    "item_label_fields",
    "item_title",
    "label_cache_clear",
    "reason_text",
    "reason_texts",
]

TITLE_NAMES = ("TITLE", "NAME", "PRODUCT_NAME", "ITEM_NAME", "PRODUCT_TITLE", "ITEM_TITLE")
CATEGORY_NAMES = ("CATEGORY_L1", "CATEGORY", "MAIN_CATEGORY", "DEPARTMENT", "GENRE", "GENRES", "SECTION")
MAX_TITLE_LENGTH = 60
NAMEABLE_KINDS = (FieldKind.STRING, FieldKind.CATEGORICAL, FieldKind.TEXTUAL)


class ReasonKind(StrEnum):
    """What made an item part of a list."""

    VIEWED = "viewed"  # the user's history item that adds most to its score
    POPULAR = "popular"  # popularity: a cold-start user, a fallback, an unknown anchor item
    NEW = "new"  # exploration of a young item
    PROMOTED = "promoted"  # a promotion's pick
    TRENDING = "trending"  # a trending-now campaign
    SIMILAR = "similar"  # related to the anchor item
    FOR_YOU = "for_you"  # personalised, with no single history item to name
    UNRANKED = "unranked"  # a ranking input the model does not know yet


@dataclass(frozen=True)
class Explanation:
    """The kind of reason of one item and what it names (an item primary key, a promotion name)."""

    kind: ReasonKind
    subject_pk: int | None = None
    promotion_name: str | None = None


@dataclass(frozen=True)
class ItemLabelFields:
    """The metadata fields that name an item and its category (None when the schema has none)."""

    title: str | None
    title_is_text: bool
    category: str | None


_label_cache: dict[int, tuple[ItemLabelFields, float]] = {}


def label_cache_clear() -> None:
    """Forget the label fields remembered per dataset group (tests; after a schema change)."""
    _label_cache.clear()


def item_label_fields(*, dataset_group_id: int) -> ItemLabelFields:
    """The title-like and category-like item fields of a group's Items schema.

    Remembered per process for `RECSITE_REASON_LABEL_SECONDS` (default 30): a schema change shows
    in the reasons' wording within that time.
    """
    ttl = float(getattr(settings, "RECSITE_REASON_LABEL_SECONDS", 30.0))
    now = time.monotonic()
    remembered = _label_cache.get(dataset_group_id)
    if remembered is not None and now - remembered[1] < ttl:
        return remembered[0]
    labels = _item_label_fields(dataset_group_id)
    _label_cache[dataset_group_id] = (labels, now)
    return labels


def _item_label_fields(dataset_group_id: int) -> ItemLabelFields:
    fields = DatasetSchema.objects.filter(
        dataset_group_id=dataset_group_id, dataset_type=DatasetType.ITEMS
    ).values_list("fields", flat=True)
    raw = fields.first()
    if not raw:
        return ItemLabelFields(None, False, None)
    specs = [spec for spec in fields_from_json(raw) if spec.is_metadata]
    return ItemLabelFields(*_title_field(specs), _category_field(specs))


def _title_field(specs: Sequence[FieldSpec]) -> tuple[str | None, bool]:
    by_name = {spec.name.upper(): spec for spec in specs if spec.kind in NAMEABLE_KINDS}
    for name in TITLE_NAMES:
        if name in by_name:
            return by_name[name].name, by_name[name].kind is FieldKind.TEXTUAL
    for spec in by_name.values():
        if spec.name.upper().endswith(("_TITLE", "_NAME")):
            return spec.name, spec.kind is FieldKind.TEXTUAL
    textual = [spec for spec in specs if spec.kind is FieldKind.TEXTUAL]
    return (textual[0].name, True) if textual else (None, False)


def _category_field(specs: Sequence[FieldSpec]) -> str | None:
    categorical = {spec.name.upper(): spec.name for spec in specs if spec.kind is FieldKind.CATEGORICAL}
    for name in CATEGORY_NAMES:
        if name in categorical:
            return categorical[name]
    for upper, name in categorical.items():
        if "CATEGORY" in upper or "GENRE" in upper:
            return name
    return None


def item_title(value: object, item_id: str, *, is_text: bool) -> str:
    """A short human name: the title field (a text field's first sentence, shortened), else the id."""
    text = " ".join(str(value).split()) if value not in (None, "") else ""
    if is_text and text:
        for stop in (". ", "! ", "? ", "; ", " - ", " — "):
            if stop in text:
                text = text.split(stop, 1)[0]
        text = text.rstrip(".!?;")
    if not text:
        return item_id
    if len(text) > MAX_TITLE_LENGTH:
        cut = text[: MAX_TITLE_LENGTH - 1].rsplit(" ", 1)[0] or text[: MAX_TITLE_LENGTH - 1]
        text = f"{cut}…"
    return text


def _category(value: object) -> str | None:
    if value in (None, ""):
        return None
    first = str(value).split("|", 1)[0].strip()
    return first or None


def reason_text(explanation: Explanation, *, title: str | None, category: str | None) -> str | None:
    """The sentence for one explanation, given the subject's title and the item's category."""
    kind = explanation.kind
    if kind is ReasonKind.VIEWED and title:
        return f"Because you viewed {title}"
    if kind is ReasonKind.SIMILAR and title:
        return f"Similar to {title}"
    if kind is ReasonKind.PROMOTED:
        return f"Promoted: {explanation.promotion_name}"
    if kind is ReasonKind.NEW:
        return f"New item in {category}" if category else "New item"
    if kind is ReasonKind.TRENDING:
        return f"Trending now in {category}" if category else "Trending now"
    if kind is ReasonKind.UNRANKED:
        return "New since the last training, so not ranked yet"
    if kind is ReasonKind.POPULAR:
        return f"Popular in {category}" if category else "Popular right now"
    return "Picked for you from your recent activity"


def reason_texts(
    *, dataset_group_id: int, item_pks: Sequence[int | None], explanations: Sequence[Explanation]
) -> list[str | None]:
    """The sentences for a list's items (one query for every name they mention, one for the schema)."""
    labels = item_label_fields(dataset_group_id=dataset_group_id)
    wanted: set[int] = {pk for pk in item_pks if pk is not None}
    wanted |= {e.subject_pk for e in explanations if e.subject_pk is not None}
    rows = _label_rows(wanted, labels)
    texts: list[str | None] = []
    for pk, explanation in zip(item_pks, explanations, strict=True):
        subject = rows.get(explanation.subject_pk) if explanation.subject_pk is not None else None
        own = rows.get(pk) if pk is not None else None
        title = item_title(subject[1], subject[0], is_text=labels.title_is_text) if subject else None
        category = _category(own[2]) if own else None
        texts.append(reason_text(explanation, title=title, category=category))
    return texts


def _label_rows(pks: Iterable[int], labels: ItemLabelFields) -> dict[int, tuple[str, object, object]]:
    """{pk: (item_id, title value, category value)} of the given items, in one plain-SQL query.

    Plain SQL because this runs on every recommendation request: the ORM spends longer building
    the query than the database spends answering it.
    """
    pks = list(pks)
    if not pks:
        return {}
    metadata_field = Item._meta.get_field("metadata")
    placeholders = ", ".join(["%s"] * len(pks))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, item_id, metadata FROM {Item._meta.db_table} WHERE id IN ({placeholders})", pks
        )
        rows = cursor.fetchall()
    labelled = {}
    for pk, item_id, raw_metadata in rows:
        metadata = metadata_field.from_db_value(raw_metadata, None, connection) or {}
        title = metadata.get(labels.title) if labels.title else None
        category = metadata.get(labels.category) if labels.category else None
        labelled[pk] = (item_id, title, category)
    return labelled
