"""Filters in the database and at serving time: create/delete/get, and boolean masks for a request.

Services and selectors are keyword-only (HackSoft style). `filter_create` parses the expression
(`recommendations.filters`) and checks it against the group's dataset schemas before writing.

Serving: `filter_item_mask` answers which of a model's items a request may return (apply it as the
candidate mask, so the top-N is taken among passing items and stays full); `filter_user_mask` does
the same over users for segments. Item-field (and user-field) conditions compile to masks kept in a
per-process LRU cache keyed by filter id + expression + the part's placeholder values + the item
index + a catalog version (the group's newest `Item.updated_at`, item count and newest schema
change, read in one query per request), so an unchanged catalog costs one query and a dictionary
look-up, and any item write invalidates the masks. Interaction conditions read the user's (or
session's) newest `MAX_FILTER_INTERACTIONS` events per event type on every request (one windowed
query on the `(user, -timestamp)` / `(group, session, -timestamp)` indexes).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Func, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import Window
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Lower, RowNumber

from catalog.models import DatasetGroup, DatasetSchema, EndUser, Interaction, Item
from catalog.schemas import DatasetType, FieldKind
from catalog.selectors import dataset_schema_fields
from recommendations.errors import FilterError, FilterNotFoundError
from recommendations.filters.evaluator import (
    DEFAULT_INTERACTION_LIMIT,
    CategoricalColumn,
    Column,
    EvaluationInput,
    NumericColumn,
    RecentInteractions,
    filter_mask,
    part_is_static,
    part_values_key,
    recent_per_event_type,
    where_mask,
)
from recommendations.filters.parser import (
    ALL_EVENT_TYPES,
    Dataset,
    FilterExpression,
    Literals,
    Operator,
    SchemaFields,
    Target,
    check_filter_expression,
    parse_filter_expression,
)
from recommendations.models import CampaignBackend, Filter, FilterStatus

__all__ = [
    "filter_cache_clear",
    "filter_create",
    "filter_delete",
    "filter_expression_check",
    "filter_get",
    "filter_item_mask",
    "filter_placeholders",
    "filter_schema_fields",
    "filter_user_mask",
    "filter_uses_user",
    "max_filter_interactions",
]

CREATION_TIMESTAMP = "CREATION_TIMESTAMP"
_lock = threading.Lock()
_cache: OrderedDict[tuple, Any] = OrderedDict()


# --- definitions -------------------------------------------------------------------------------


def max_filter_interactions() -> int:
    """Interactions per user per event type that filters look at (`MAX_FILTER_INTERACTIONS`, default 100)."""
    return int(getattr(settings, "MAX_FILTER_INTERACTIONS", DEFAULT_INTERACTION_LIMIT))


def filter_schema_fields(*, dataset_group: DatasetGroup) -> SchemaFields:
    """The fields a filter of this group may name, with their kinds, per dataset."""
    fields: dict[Dataset, dict[str, FieldKind]] = {}
    for dataset, dataset_type in ((Dataset.ITEMS, DatasetType.ITEMS), (Dataset.USERS, DatasetType.USERS)):
        specs = dataset_schema_fields(dataset_group=dataset_group, dataset_type=dataset_type) or []
        fields[dataset] = {spec.name: spec.kind for spec in specs if spec.is_metadata}
    fields[Dataset.ITEMS][CREATION_TIMESTAMP] = FieldKind.NUMERICAL
    fields[Dataset.INTERACTIONS] = {"EVENT_TYPE": FieldKind.STRING}
    return fields


def filter_expression_check(*, dataset_group: DatasetGroup, expression: str) -> FilterExpression:
    """Parse and check an expression against the group's schemas; raises FilterSyntaxError / FilterError."""
    parsed = parse_filter_expression(expression)
    return check_filter_expression(parsed, fields=filter_schema_fields(dataset_group=dataset_group))


def filter_create(
    *, dataset_group: DatasetGroup, name: str, expression: str, backend: str | None = None
) -> Filter:
    """Create a filter (CreateFilter); nothing is written when the name or expression is refused.

    `backend` (default `RECSITE_BACKEND`) is where the filter lives. A local filter is ACTIVE at
    once. On `personalize` it is created there too (CreateFilter, same expression; nothing is
    written if Personalize refuses it) and is CREATE PENDING until its task, enqueued on commit,
    sees Personalize report it ACTIVE or CREATE FAILED (with the reason).
    """
    from recommendations.backends.base import backend_get, default_backend_name

    filter_expression_check(dataset_group=dataset_group, expression=expression)
    if Filter.objects.filter(name=name).exists():
        raise FilterError(f"a filter named {name!r} already exists")
    backend = backend or default_backend_name()
    if backend not in CampaignBackend.values:
        raise FilterError(f"backend must be one of {', '.join(CampaignBackend.values)}, not {backend!r}")
    on_personalize = backend == CampaignBackend.PERSONALIZE
    instance = Filter(
        dataset_group=dataset_group,
        name=name,
        expression=expression,
        status=FilterStatus.PENDING if on_personalize else FilterStatus.ACTIVE,
        backend=backend,
    )
    try:
        instance.full_clean()
    except ValidationError as error:
        messages = "; ".join(f"{key}: {' '.join(value)}" for key, value in error.message_dict.items())
        raise FilterError(messages) from None
    try:
        with transaction.atomic():
            instance.save()
            backend_get(backend).filter_create(filter=instance)  # a refusal rolls the row back
    except IntegrityError:
        raise FilterError(f"a filter named {name!r} already exists") from None
    if on_personalize:
        from recommendations.personalize_tasks import personalize_filter_task

        transaction.on_commit(lambda: personalize_filter_task.delay(instance.pk))
    return instance


def filter_get(*, name: str) -> Filter:
    """The named filter (names are unique across dataset groups)."""
    try:
        return Filter.objects.select_related("dataset_group").get(name=name)
    except Filter.DoesNotExist:
        raise FilterNotFoundError(name) from None


def filter_delete(*, name: str) -> Filter:
    """Delete the named filter (DeleteFilter) from its backend, then its row; returns it as it was."""
    from recommendations.backends.base import backend_get

    instance = filter_get(name=name)
    backend_get(instance.backend).filter_delete(filter=instance)
    pk = instance.pk
    instance.delete()
    instance.pk = pk
    instance.status = FilterStatus.DELETE_PENDING
    return instance


def filter_placeholders(*, filter: Filter) -> tuple[str, ...]:
    """The placeholder names (without `$`) the filter's expression uses."""
    return parse_filter_expression(filter.expression).placeholders


# --- the cache ---------------------------------------------------------------------------------


def filter_cache_clear() -> None:
    """Forget every cached column and mask of this process (tests; memory pressure)."""
    with _lock:
        _cache.clear()
        _checked_versions.clear()


def _cached(key: tuple, build: Callable[[], Any]) -> Any:
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = build()
    limit = int(getattr(settings, "RECSITE_FILTER_CACHE_SIZE", 512))
    with _lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > limit:
            _cache.popitem(last=False)
    return value


def _stamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


_COUNT_ALL = Func(template="COUNT(*)", output_field=IntegerField())
_checked_versions: dict[tuple[int, str], tuple[float, tuple]] = {}


def _catalog_version(group_id: int, model: type[Item] | type[EndUser]) -> tuple:
    """The group's catalog version, re-read at most every RECSITE_FILTER_CATALOG_CHECK_SECONDS."""
    ttl = float(getattr(settings, "RECSITE_FILTER_CATALOG_CHECK_SECONDS", 1.0))
    key = (group_id, model.__name__)
    now = time.monotonic()
    checked = _checked_versions.get(key)
    if ttl > 0 and checked is not None and now - checked[0] < ttl:
        return checked[1]
    version = _catalog_version_read(group_id, model)
    _checked_versions[key] = (now, version)
    return version


def _catalog_version_read(group_id: int, model: type[Item] | type[EndUser]) -> tuple:
    """(newest updated_at, count) of the group's items or users and its newest schema change: one query.

    The newest `updated_at` is an index look-up for items (`item_group_updated`); the count, which
    is what notices a deletion, walks the group's index entries once per check interval.
    """
    rows = model.objects.filter(dataset_group=OuterRef("pk"))
    version = (
        DatasetGroup.objects.filter(pk=group_id)
        .annotate(
            latest=Subquery(rows.order_by("-updated_at").values("updated_at")[:1]),
            # COUNT(*) without a GROUP BY: one walk of the group's index entries
            count=Subquery(rows.order_by().annotate(n=_COUNT_ALL).values("n")[:1]),
            schema=Subquery(
                DatasetSchema.objects.filter(dataset_group=OuterRef("pk"))
                .order_by("-updated_at")
                .values("updated_at")[:1]
            ),
        )
        .values_list("latest", "count", "schema")
        .first()
    )
    if version is None:
        return (model.__name__, None, 0, None)
    latest, count, schema = version
    return (model.__name__, _stamp(latest), count or 0, _stamp(schema))


_fingerprints: dict[int, tuple[Any, tuple]] = {}


def _fingerprint(given: Any) -> tuple:
    """A key of a pk array; a read-only array (a loaded model's, the same object on every request) is
    summed once per process (remembered by identity while it lives)."""
    if not isinstance(given, np.ndarray) or given.flags.writeable:
        return _fingerprint_of(np.asarray(given, dtype=np.int64))
    known = _fingerprints.get(id(given))
    if known is not None and known[0]() is given:
        return known[1]
    fingerprint = _fingerprint_of(np.asarray(given, dtype=np.int64))
    with _lock:
        if len(_fingerprints) > 64:
            _fingerprints.clear()
        _fingerprints[id(given)] = (weakref.ref(given), fingerprint)
    return fingerprint


def _fingerprint_of(pks: np.ndarray) -> tuple:
    if not len(pks):
        return (0,)
    return (
        len(pks),
        int(pks[0]),
        int(pks[-1]),
        int(pks.sum()),
        int((pks * np.arange(1, len(pks) + 1)).sum()),
    )


def _positions(key: tuple, pks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted pks, order) of a row index, cached: for pk -> row look-ups."""

    def build() -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(pks, kind="stable")
        return np.asarray(pks, dtype=np.int64)[order], order

    return _cached(("positions", *key), build)


def _rows_of(pks_sorted: np.ndarray, order: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row index of each wanted pk (-1 when absent)."""
    if not len(pks_sorted) or not len(wanted):
        return np.full(len(wanted), -1, dtype=np.int64)
    at = np.clip(np.searchsorted(pks_sorted, wanted), 0, len(pks_sorted) - 1)
    found = pks_sorted[at] == wanted
    return np.where(found, order[at], -1).astype(np.int64)


def _column(
    model: type[Item] | type[EndUser],
    group_id: int,
    field: str,
    kind: FieldKind,
    positions: tuple[np.ndarray, np.ndarray],
    n_rows: int,
) -> Column:
    rows = model.objects.filter(dataset_group_id=group_id).order_by()
    if field == CREATION_TIMESTAMP and model is Item:
        pairs = [(pk, _stamp(value)) for pk, value in rows.values_list("pk", "creation_timestamp")]
    else:
        pairs = list(rows.annotate(value=KeyTransform(field, "metadata")).values_list("pk", "value"))
    values: list[Any] = [None] * n_rows
    if pairs:
        index = _rows_of(*positions, np.fromiter((pk for pk, _ in pairs), dtype=np.int64, count=len(pairs)))
        for row, (_, value) in zip(index.tolist(), pairs, strict=True):
            if row >= 0:
                values[row] = value
    if kind is FieldKind.NUMERICAL:
        return NumericColumn.from_values(values)
    return CategoricalColumn.from_values(values)


def _columns(
    model: type[Item] | type[EndUser],
    group_id: int,
    expression: FilterExpression,
    dataset: Dataset,
    kinds: SchemaFields,
    base_key: tuple,
    positions: tuple[np.ndarray, np.ndarray],
    n_rows: int,
) -> dict[str, Column]:
    wanted = {c.ref.field for part in expression.parts for c in part.conditions() if c.ref.dataset is dataset}
    known = kinds.get(dataset, {})
    columns = {}
    for field in sorted(wanted & set(known)):
        kind = known[field]
        columns[field] = _cached(
            ("column", *base_key, field, kind),
            lambda field=field, kind=kind: _column(model, group_id, field, kind, positions, n_rows),
        )
    return columns


def _kinds(group: DatasetGroup | int, version: tuple) -> SchemaFields:
    group_id = group if isinstance(group, int) else group.pk

    def build() -> SchemaFields:
        return filter_schema_fields(dataset_group=DatasetGroup.objects.get(pk=group_id))

    return _cached(("kinds", group_id, version[-1]), build)


def _static_masks(
    filter: Filter, expression: FilterExpression, inp: EvaluationInput, base_key: tuple
) -> dict[int, np.ndarray]:
    masks = {}
    for index, part in enumerate(expression.parts):
        if not part_is_static(part) or any(not inp.filter_values.get(n) for n in part.placeholders):
            continue
        key = (
            "mask",
            filter.pk,
            filter.expression,
            index,
            part_values_key(part, inp.filter_values),
            *base_key,
        )
        masks[index] = _cached(key, lambda part=part: where_mask(part, inp))
    return masks


def _values(filter_values: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    values = {}
    for name, given in (filter_values or {}).items():
        if isinstance(given, str):
            given = [given]
        values[str(name).removeprefix("$")] = [str(value) for value in given]
    return values


def _parsed(filter: Filter, target: Target) -> FilterExpression:
    if filter.status != FilterStatus.ACTIVE:
        raise FilterError(f"filter {filter.name!r} is {filter.status}; only ACTIVE filters can be used")
    expression = parse_filter_expression(filter.expression)
    if expression.target is not target:
        use = "user segments" if expression.target is Target.USER else "item recommendations"
        raise FilterError(f"filter {filter.name!r} filters {expression.target}: use it for {use}")
    return expression


def _event_types(expression: FilterExpression) -> set[str] | None:
    """Lower-cased event types the filter names; None when it needs every type ("*" or a placeholder)."""
    types: set[str] = set()
    for part in expression.parts:
        for condition in part.conditions():
            if condition.ref.dataset is not Dataset.INTERACTIONS:
                continue
            operand = condition.operand
            if not isinstance(operand, Literals):
                return None
            texts = {str(value).lower() for value in operand.values}
            if ALL_EVENT_TYPES in texts or condition.operator is Operator.NOT_IN:
                return None
            types |= texts
    return types


def _newest_events(events: QuerySet[Interaction], types: set[str] | None, limit: int) -> list[tuple]:
    events = events.annotate(kind=Lower("event_type"))
    if types is not None:
        events = events.filter(kind__in=sorted(types))
    ranked = events.annotate(
        rank=Window(RowNumber(), partition_by=[F("kind")], order_by=[F("timestamp").desc(), F("id").desc()])
    ).filter(rank__lte=limit)
    return list(ranked.values_list("item_id", "kind", "timestamp"))


def _recent_interactions(
    group_id: int,
    expression: FilterExpression,
    user: EndUser | None,
    session_id: str | None,
    positions: tuple[np.ndarray, np.ndarray],
) -> RecentInteractions:
    limit = max_filter_interactions()
    types = _event_types(expression)
    events = Interaction.objects.filter(dataset_group_id=group_id, item__isnull=False)
    rows: list[tuple] = []
    if user is not None:
        rows += _newest_events(events.filter(user=user), types, limit)
    if session_id:
        rows += _newest_events(events.filter(Q(user__isnull=True), session_id=session_id), types, limit)
    if not rows:
        return RecentInteractions.empty()
    rows.sort(key=lambda row: row[2], reverse=True)
    index = _rows_of(*positions, np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)))
    recent = RecentInteractions(index, np.array([row[1] for row in rows], dtype=object))
    return recent_per_event_type(recent, limit)


def _item_attributes(item: Item | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {**(item.metadata or {}), CREATION_TIMESTAMP: _stamp(item.creation_timestamp)}


def _uses(expression: FilterExpression, dataset: Dataset) -> bool:
    return any(c.ref.dataset is dataset for part in expression.parts for c in part.conditions())


def filter_uses_user(*, filter: Filter) -> bool:
    """Whether `filter_item_mask` reads the requesting user (Interactions conditions, IF CurrentUser gates).

    Callers that have only a user id may skip loading the EndUser for any other filter (the mask
    does not depend on it).
    """
    expression = parse_filter_expression(filter.expression)
    return _uses(expression, Dataset.INTERACTIONS) or any(part.gate for part in expression.parts)


# --- serving -----------------------------------------------------------------------------------


def filter_item_mask(
    *,
    filter: Filter,
    filter_values: Mapping[str, Sequence[str]] | None,
    item_pks: np.ndarray,
    user: EndUser | None = None,
    session_id: str | None = None,
    current_item: Item | None = None,
) -> np.ndarray:
    """Which items (a model's item index → Item pk) a request may return; raises FilterError."""
    expression = _parsed(filter, Target.ITEM)
    fingerprint = _fingerprint(item_pks)
    item_pks = np.asarray(item_pks, dtype=np.int64)
    group_id = filter.dataset_group_id
    version = _catalog_version(group_id, Item)
    base_key = (group_id, version, fingerprint)
    kinds = _kinds(group_id, version)
    positions = _positions(("items", fingerprint), item_pks)
    columns = _columns(Item, group_id, expression, Dataset.ITEMS, kinds, base_key, positions, len(item_pks))
    interactions = None
    if _uses(expression, Dataset.INTERACTIONS):
        interactions = _recent_interactions(group_id, expression, user, session_id, positions)
    inp = EvaluationInput(
        n_rows=len(item_pks),
        columns=columns,
        kinds=kinds,
        interactions=interactions,
        current_user=None if user is None else dict(user.metadata or {}),
        current_item=_item_attributes(current_item),
        filter_values=_values(filter_values),
    )
    return filter_mask(expression, inp, where_masks=_static_masks(filter, expression, inp, base_key))


def filter_user_mask(
    *, filter: Filter, filter_values: Mapping[str, Sequence[str]] | None, user_pks: np.ndarray
) -> np.ndarray:
    """Which users (a model's user index → EndUser pk) a segment may return; raises FilterError."""
    expression = _parsed(filter, Target.USER)
    fingerprint = _fingerprint(user_pks)
    user_pks = np.asarray(user_pks, dtype=np.int64)
    group_id = filter.dataset_group_id
    version = _catalog_version(group_id, EndUser)
    base_key = (group_id, version, fingerprint)
    kinds = _kinds(group_id, version)
    positions = _positions(("users", fingerprint), user_pks)
    columns = _columns(
        EndUser, group_id, expression, Dataset.USERS, kinds, base_key, positions, len(user_pks)
    )
    interactions = None
    if _uses(expression, Dataset.INTERACTIONS):
        events = Interaction.objects.filter(dataset_group_id=group_id, user__isnull=False).annotate(
            kind=Lower("event_type")
        )
        types = _event_types(expression)
        if types is not None:
            events = events.filter(kind__in=sorted(types))
        pairs = list(events.order_by().values_list("user_id", "kind").distinct())
        rows = _rows_of(*positions, np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs)))
        interactions = RecentInteractions(rows, np.array([p[1] for p in pairs], dtype=object))
    inp = EvaluationInput(
        n_rows=len(user_pks),
        columns=columns,
        kinds=kinds,
        interactions=interactions,
        filter_values=_values(filter_values),
    )
    return filter_mask(expression, inp, where_masks=_static_masks(filter, expression, inp, base_key))
