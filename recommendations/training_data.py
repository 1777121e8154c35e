"""Build the engine's `InteractionData` for one dataset group from the database, column-wise and fast.

Users and items get dense indices in primary-key order (`user_pks` / `item_pks` are sorted, so a
request maps a database key to an index with one `searchsorted`); every user and item of the
group is indexed, so items without events still carry metadata. Interactions are read with one
raw query (epoch seconds and event-type codes computed by the database) into numpy. Anonymous
events (no user) and events without an item are left out, as Personalize leaves them out.

Metadata become sparse features row-aligned with the indices: categorical fields one-hot per
`|` value (`GENRES=Comedy`), the textual field as TF-IDF of its words (`DESCRIPTION:word`,
rows of unit length), numerical fields scaled to [0, 1], booleans as 0/1.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.db import connection

from catalog.importing import MIN_INTERACTIONS, MIN_USERS_WITH_TWO_INTERACTIONS
from catalog.models import DatasetGroup, EndUser, Interaction, Item
from catalog.schemas import DatasetType, FieldKind, FieldSpec
from catalog.selectors import dataset_schema_fields
from recommendations.engine.base import InteractionData
from recommendations.engine.events import EventSelection, apply_event_selection, event_selection
from recommendations.errors import RecommendationError

__all__ = [
    "MAX_TEXT_FEATURES",
    "MinimumDataError",
    "TrainingData",
    "feature_matrix",
    "minimum_data_check",
    "solution_event_selection",
    "training_data_build",
]

MAX_TEXT_FEATURES = 5000
FETCH_ROWS = 200_000
_TAGS = re.compile(r"<[^>]+>")
_WORDS = re.compile(r"[^\W_]{2,}")


class MinimumDataError(RecommendationError):
    """Too little data to train, with Personalize's message."""


@dataclass(frozen=True)
class TrainingData:
    """The engine's data plus the index maps that translate it back to the catalog."""

    data: InteractionData
    user_pks: np.ndarray  # int64, sorted: user index -> EndUser.pk
    user_ids: np.ndarray  # str: user index -> external USER_ID
    item_pks: np.ndarray  # int64, sorted: item index -> Item.pk
    item_ids: np.ndarray  # str: item index -> external ITEM_ID
    selection: EventSelection

    @property
    def interactions_count(self) -> int:
        """Events that train (after event-type and threshold filtering)."""
        return len(self.data.user)

    @property
    def users_count(self) -> int:
        """Distinct users with training events."""
        return len(np.unique(self.data.user))

    @property
    def items_count(self) -> int:
        """Distinct items with training events."""
        return len(np.unique(self.data.item))


def solution_event_selection(solution_config: Mapping[str, Any] | None) -> EventSelection:
    """The event selection of a solutionConfig (with CreateSolution's `eventType` at its top level)."""
    config = dict(solution_config or {})
    return event_selection(event_type=config.get("eventType"), solution_config=config)


def training_data_build(
    *, dataset_group: DatasetGroup, solution_config: Mapping[str, Any] | None = None, features: bool = True
) -> TrainingData:
    """All trainable events of a group, weighted by the solution's event options, with metadata features."""
    selection = solution_event_selection(solution_config)
    user_pks, user_ids, user_meta = _records(EndUser, "user_id", dataset_group, with_metadata=features)
    item_pks, item_ids, item_meta, item_created = _items(dataset_group, with_metadata=features)
    events = _interaction_columns(dataset_group)
    user = np.searchsorted(user_pks, events["user"]).astype(np.int32)
    item = np.searchsorted(item_pks, events["item"]).astype(np.int32)
    # Rows whose user or item vanished between the queries (a concurrent delete) are dropped.
    known = (user < len(user_pks)) & (item < len(item_pks))
    known[known] = (user_pks[user[known]] == events["user"][known]) & (
        item_pks[item[known]] == events["item"][known]
    )
    data = InteractionData(
        user=user[known],
        item=item[known],
        timestamp=events["timestamp"][known],
        n_users=len(user_pks),
        n_items=len(item_pks),
        event_type=events["event_type"][known],
        event_types=events["event_types"],
    )
    data = apply_event_selection(data, selection, events["event_value"][known])
    creation = _item_creation(item_created, data)
    item_features = item_names = user_features = user_names = None
    if features:
        item_specs = dataset_schema_fields(dataset_group=dataset_group, dataset_type=DatasetType.ITEMS) or []
        user_specs = dataset_schema_fields(dataset_group=dataset_group, dataset_type=DatasetType.USERS) or []
        item_features, item_names = feature_matrix(item_meta, item_specs)
        user_features, user_names = feature_matrix(user_meta, user_specs)
    data = dataclasses.replace(
        data,
        item_features=item_features,
        item_feature_names=tuple(item_names or ()),
        user_features=user_features,
        user_feature_names=tuple(user_names or ()),
        item_creation=creation,
    )
    return TrainingData(data, user_pks, user_ids, item_pks, item_ids, selection)


def minimum_data_check(training: TrainingData) -> None:
    """Raise MinimumDataError with Personalize's message when the training events are too few."""
    data = training.data
    counts = np.bincount(data.user, minlength=data.n_users) if data.n_users else np.zeros(0, dtype=np.int64)
    active_users = int((counts >= 2).sum())
    found = (
        f"Found {len(data.user)} interactions and {active_users} users with at least 2 interactions "
        "(counted after eventType / eventValueThreshold filtering; anonymous events do not count)."
    )
    if len(data.user) < MIN_INTERACTIONS:
        raise MinimumDataError(
            f"Create failed. Dataset has fewer than {MIN_INTERACTIONS} interactions. {found}"
        )
    if active_users < MIN_USERS_WITH_TWO_INTERACTIONS:
        raise MinimumDataError(
            f"Create failed. Dataset has fewer than {MIN_USERS_WITH_TWO_INTERACTIONS} users with at least "
            f"2 interactions each. {found}"
        )


# --- reading -----------------------------------------------------------------------------------


def _records(
    model: type[EndUser], id_field: str, group: DatasetGroup, *, with_metadata: bool
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    fields = ["pk", id_field] + (["metadata"] if with_metadata else [])
    rows = list(model.objects.filter(dataset_group=group).order_by("pk").values_list(*fields))
    pks = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    ids = np.array([row[1] for row in rows], dtype=str) if rows else np.empty(0, dtype="<U1")
    metadata = [row[2] or {} for row in rows] if with_metadata else [{} for _ in rows]
    return pks, ids, metadata


def _items(
    group: DatasetGroup, *, with_metadata: bool
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], np.ndarray]:
    fields = ["pk", "item_id", "creation_timestamp"] + (["metadata"] if with_metadata else [])
    rows = list(Item.objects.filter(dataset_group=group).order_by("pk").values_list(*fields))
    pks = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    ids = np.array([row[1] for row in rows], dtype=str) if rows else np.empty(0, dtype="<U1")
    created = np.fromiter(
        (int(row[2].timestamp()) if row[2] is not None else -1 for row in rows),
        dtype=np.int64,
        count=len(rows),
    )
    metadata = [row[3] or {} for row in rows] if with_metadata else [{} for _ in rows]
    return pks, ids, metadata, created


def epoch_sql(column: str) -> str:
    """SQL for a datetime column as whole Unix seconds (SQLite or PostgreSQL)."""
    if connection.vendor == "postgresql":
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"
    if connection.vendor == "sqlite":
        return f"CAST(strftime('%%s', {column}) AS INTEGER)"
    raise RecommendationError(
        f"training reads interactions from SQLite or PostgreSQL, not {connection.vendor}"
    )


def _interaction_columns(group: DatasetGroup) -> dict[str, Any]:
    """One pass over the group's identified events: user/item keys, epoch, event-type code and value."""
    event_types = tuple(
        Interaction.objects.filter(dataset_group=group, user__isnull=False, item__isnull=False)
        .order_by("event_type")
        .values_list("event_type", flat=True)
        .distinct()
    )
    quote = connection.ops.quote_name
    table = quote(Interaction._meta.db_table)
    if event_types:
        cases = " ".join("WHEN %s THEN " + str(code) for code in range(len(event_types)))
        code_sql = f"CASE {quote('event_type')} {cases} ELSE -1 END"
    else:
        code_sql = "-1"
    # The CASE parameters come first: they appear in the select list before the WHERE clause.
    cases_params: list[Any] = list(event_types)
    sql = (
        f"SELECT {quote('user_id')}, {quote('item_id')}, {epoch_sql(quote('timestamp'))}, {code_sql}, "
        f"CASE WHEN {quote('event_value')} IS NULL THEN 1 ELSE 0 END, COALESCE({quote('event_value')}, 0) "
        f"FROM {table} WHERE {quote('dataset_group_id')} = %s AND {quote('user_id')} IS NOT NULL "
        f"AND {quote('item_id')} IS NOT NULL ORDER BY {quote('timestamp')}, {quote('id')}"
    )
    chunks: list[np.ndarray] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, [*cases_params, group.pk])
        while rows := cursor.fetchmany(FETCH_ROWS):
            chunks.append(np.array(rows, dtype=np.float64))
    table_data = np.concatenate(chunks) if chunks else np.empty((0, 6), dtype=np.float64)
    value = table_data[:, 5].copy()
    value[table_data[:, 4] == 1] = np.nan
    return {
        "user": table_data[:, 0].astype(np.int64),
        "item": table_data[:, 1].astype(np.int64),
        "timestamp": table_data[:, 2].astype(np.int64),
        "event_type": table_data[:, 3].astype(np.int16),
        "event_types": event_types,
        "event_value": value,
    }


def _item_creation(created: np.ndarray, data: InteractionData) -> np.ndarray:
    """CREATION_TIMESTAMP, else the item's oldest training event, else the newest event (a new item)."""
    creation = created.copy()
    missing = creation < 0
    if missing.any() and len(data.timestamp):
        oldest = np.full(len(creation), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(oldest, data.item, data.timestamp)
        seen = oldest != np.iinfo(np.int64).max
        creation[missing & seen] = oldest[missing & seen]
        creation[missing & ~seen] = int(data.timestamp.max())
    return creation


# --- features ----------------------------------------------------------------------------------


def feature_matrix(
    records: Sequence[Mapping[str, Any]], specs: Iterable[FieldSpec]
) -> tuple[sp.csr_matrix | None, list[str]]:
    """Sparse features of metadata rows per the schema's fields (None when the schema has no usable field)."""
    blocks: list[sp.csr_matrix] = []
    names: list[str] = []
    n = len(records)
    for spec in specs:
        if not spec.is_metadata:
            continue
        values = [record.get(spec.name) for record in records]
        match spec.kind:
            case FieldKind.CATEGORICAL:
                block, block_names = _one_hot(spec.name, values)
            case FieldKind.TEXTUAL:
                block, block_names = _tf_idf(spec.name, values)
            case FieldKind.NUMERICAL:
                block, block_names = _scaled(spec.name, values)
            case FieldKind.BOOLEAN:
                column = np.array([1.0 if value is True else 0.0 for value in values], dtype=np.float32)
                block, block_names = sp.csr_matrix(column.reshape(-1, 1)), [spec.name]
            case _:
                continue
        if block.shape[1]:
            blocks.append(block)
            names.extend(block_names)
    if not blocks:
        return None, []
    matrix = (
        sp.csr_matrix(sp.hstack(blocks, format="csr", dtype=np.float32))
        if n
        else sp.csr_matrix((0, len(names)))
    )
    return matrix.astype(np.float32), names


def _one_hot(field: str, values: Sequence[Any]) -> tuple[sp.csr_matrix, list[str]]:
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    columns: list[int] = []
    for row, value in enumerate(values):
        if value is None:
            continue
        for part in {part.strip() for part in str(value).split("|")}:
            if part:
                rows.append(row)
                columns.append(vocabulary.setdefault(part, len(vocabulary)))
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(len(values), len(vocabulary))
    )
    return matrix, [f"{field}={value}" for value in vocabulary]


def _tf_idf(field: str, values: Sequence[Any]) -> tuple[sp.csr_matrix, list[str]]:
    """TF-IDF of lower-cased words (HTML tags removed), smooth IDF, rows scaled to unit length."""
    documents = [
        Counter(_WORDS.findall(_TAGS.sub(" ", str(value)).lower())) if value else Counter()
        for value in values
    ]
    frequency: Counter[str] = Counter()
    for document in documents:
        frequency.update(document.keys())
    minimum = 2 if len(documents) >= 20 else 1
    kept = [word for word, df in frequency.most_common() if df >= minimum][:MAX_TEXT_FEATURES]
    vocabulary = {word: column for column, word in enumerate(sorted(kept))}
    n = len(documents)
    idf = np.array([math.log((1 + n) / (1 + frequency[word])) + 1.0 for word in vocabulary], dtype=np.float32)
    rows, columns, counts = [], [], []
    for row, document in enumerate(documents):
        for word, count in document.items():
            column = vocabulary.get(word)
            if column is not None:
                rows.append(row)
                columns.append(column)
                counts.append(count)
    matrix = sp.csr_matrix(
        (np.asarray(counts, dtype=np.float32), (rows, columns)), shape=(n, len(vocabulary)), dtype=np.float32
    )
    matrix = sp.csr_matrix(matrix @ sp.diags(idf))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ matrix, dtype=np.float32), [
        f"{field}:{word}" for word in vocabulary
    ]


def _scaled(field: str, values: Sequence[Any]) -> tuple[sp.csr_matrix, list[str]]:
    """Min-max scaled to [0, 1]; missing values are 0."""
    numbers = np.array(
        [
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan
            for value in values
        ],
        dtype=np.float64,
    )
    present = np.isfinite(numbers)
    if not present.any():
        return sp.csr_matrix((len(values), 0), dtype=np.float32), []
    low, high = numbers[present].min(), numbers[present].max()
    scaled = np.zeros(len(values), dtype=np.float32)
    scaled[present] = (numbers[present] - low) / (high - low) if high > low else 1.0
    return sp.csr_matrix(scaled.reshape(-1, 1)), [field]
