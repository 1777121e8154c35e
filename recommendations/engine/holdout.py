"""Personalize's holdout split (PROTOCOL.md), reproducing ../shared/eval/reference.py exactly.

10% of the users with at least 2 interactions are test users, picked by
`numpy.random.default_rng(42).permutation` over the sorted unique user ids (first
ceil(0.1 * n)). Training data is every event of the other users. Per test user, events sorted
by time (ties keep input order): the oldest n - max(1, floor(0.1 n)) are the request-time
history, the newest max(1, floor(0.1 n)) are relevant.

"Sorted user ids" means the caller's external ids when `user_ids` is given (the reference
sorts string ids), otherwise the dense indices.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from recommendations.engine.base import History, InteractionData

__all__ = ["Holdout", "holdout_split", "subset_events", "validation_split"]


@dataclass(frozen=True)
class Holdout:
    """A split: training data (same index space), and per test user the history and relevant items."""

    train: InteractionData
    test_users: np.ndarray  # int32 user indices, in the order of the sorted ids
    history: tuple[History, ...]  # oldest events per test user, oldest first
    relevant: tuple[np.ndarray, ...]  # distinct relevant item indices per test user (int32)


def subset_events(data: InteractionData, mask_or_index: np.ndarray) -> InteractionData:
    """The same data restricted to some events (boolean mask or index array); indices unchanged."""

    def take(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else array[mask_or_index]

    return dataclasses.replace(
        data,
        user=data.user[mask_or_index],
        item=data.item[mask_or_index],
        timestamp=data.timestamp[mask_or_index],
        weight=take(data.weight),
        event_type=take(data.event_type),
    )


def holdout_split(data: InteractionData, *, seed: int = 42, user_ids: np.ndarray | None = None) -> Holdout:
    """Split as Personalize does: 10% of users (with ≥2 events) held out; see the module docstring."""
    user = np.asarray(data.user)
    timestamp = np.asarray(data.timestamp)
    by_time = np.argsort(timestamp, kind="stable")
    order = by_time[np.argsort(user[by_time], kind="stable")]  # by user, then time, then input order
    counts = np.bincount(user, minlength=data.n_users)
    eligible = np.flatnonzero(counts >= 2)
    if user_ids is not None:
        eligible = eligible[np.argsort(np.asarray(user_ids)[eligible], kind="stable")]
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(eligible)[: math.ceil(0.1 * len(eligible))]
    if user_ids is not None:
        test_users = chosen[np.argsort(np.asarray(user_ids)[chosen], kind="stable")]
    else:
        test_users = np.sort(chosen)
    test_users = test_users.astype(np.int32)

    is_test_user = np.zeros(data.n_users, dtype=bool)
    is_test_user[test_users] = True
    train = subset_events(data, ~is_test_user[user])

    starts = np.concatenate([[0], np.cumsum(counts)])  # `order` groups users by index
    weights = data.weight
    history, relevant = [], []
    for u in test_users:
        events = order[starts[u] : starts[u + 1]]
        n_relevant = max(1, math.floor(0.1 * len(events)))
        past, future = events[: len(events) - n_relevant], events[len(events) - n_relevant :]
        history.append(
            History(
                item=data.item[past].astype(np.int32),
                timestamp=timestamp[past].astype(np.int64),
                weight=None if weights is None else weights[past],
            )
        )
        relevant.append(np.unique(data.item[future]).astype(np.int32))
    return Holdout(train=train, test_users=test_users, history=tuple(history), relevant=tuple(relevant))


def validation_split(data: InteractionData, *, seed: int = 42, user_ids: np.ndarray | None = None) -> Holdout:
    """The protocol applied again to the training users of `holdout_split(data)` (for HPO; no test users)."""
    train = holdout_split(data, seed=seed, user_ids=user_ids).train
    return holdout_split(train, seed=seed, user_ids=user_ids)
