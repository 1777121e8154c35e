"""Offline metrics, the holdout split and the evaluation runner, against hand-computed figures.

reference.py needs pandas, which the project does not install, so its `split` and `metrics` are
re-implemented here in plain Python, line for line, and compared with the engine's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recommendations.engine.base import History, InteractionData, Recipe, Recommendation
from recommendations.engine.evaluate import evaluate, evaluate_holdout, tune
from recommendations.engine.holdout import holdout_split, validation_split
from recommendations.engine.metrics import (
    coverage,
    hit_matrix,
    ndcg_at_k,
    personalize_metrics,
    precision_at_k,
    reciprocal_rank,
)
from recommendations.engine.popularity import PopularityCount
from recommendations.engine.sims import Sims

# --- metrics -------------------------------------------------------------------------------


def test_personalize_worked_ndcg_example_gives_0_6241():
    # given Personalize's documented example (working-with-training-metrics): K = 5, two relevant
    # items, recommended at positions 2 and 5:
    #   (1/log(1+2) + 1/log(1+5)) / (1/log(1+1) + 1/log(1+2)) = 0.6241
    # (hits at 1 and 3 would give (1 + 1/log2 4) / (1 + 1/log2 3) = 0.9197 instead)
    recommended = [np.array([10, 20, 30, 40, 50])]
    relevant = [np.array([20, 50])]
    # when NDCG@5 is computed
    hits = hit_matrix(recommended, relevant, 25)
    value = ndcg_at_k(hits, np.array([2]), 5)[0]
    # then it is Personalize's figure
    assert round(value, 4) == 0.6241
    assert value == pytest.approx((1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3)))


def test_precision_divides_by_k_even_for_short_lists():
    # given two hits in the top 5 of a 5-item list, and one hit in a 3-item list
    hits = hit_matrix([np.array([1, 2, 3, 4, 5]), np.array([7, 8, 9])], [np.array([2, 5]), np.array([9])])
    # then precision@5 is 2/5 and 1/5; precision@10 is 2/10 and 1/10
    np.testing.assert_allclose(precision_at_k(hits, 5), [0.4, 0.2])
    np.testing.assert_allclose(precision_at_k(hits, 10), [0.2, 0.1])


def test_ndcg_ideal_uses_min_of_k_and_relevant_count():
    # given 30 relevant items and all 25 recommended relevant
    recommended = [np.arange(25)]
    relevant = [np.arange(30)]
    hits = hit_matrix(recommended, relevant)
    # then NDCG is 1 at every K (the ideal has min(K, 30) hits)
    for k in (5, 10, 25):
        assert ndcg_at_k(hits, np.array([30]), k)[0] == pytest.approx(1.0)
    # and a single relevant item at rank 1 also gives 1, at rank 2 gives 1/log2(3)
    one = hit_matrix([np.array([4, 9]), np.array([9, 4])], [np.array([4]), np.array([4])])
    np.testing.assert_allclose(ndcg_at_k(one, np.array([1, 1]), 5), [1.0, 1 / math.log2(3)])


def test_reciprocal_rank_of_first_hit_or_zero():
    # given first hits at ranks 1, 3 and none
    hits = hit_matrix(
        [np.array([1, 2, 3]), np.array([4, 5, 6]), np.array([7, 8])],
        [np.array([1, 3]), np.array([6]), np.array([99])],
    )
    # then the reciprocal ranks are 1, 1/3 and 0
    np.testing.assert_allclose(reciprocal_rank(hits), [1.0, 1 / 3, 0.0])


def test_coverage_counts_distinct_recommended_items():
    # given two lists sharing one item, in a catalogue of 10 items
    # then coverage is 5 distinct / 10
    assert coverage([np.array([1, 2, 3]), np.array([3, 4, 5])], 10) == 0.5


def test_metrics_only_look_at_the_top_25():
    # given a hit at rank 26 only
    recommended = [np.arange(100, 130)]
    relevant = [np.array([125])]
    # then it does not count anywhere
    metrics = personalize_metrics(recommended, relevant, 200)
    assert metrics["mean_reciprocal_rank_at_25"] == 0.0
    assert metrics["precision_at_25"] == 0.0
    assert metrics["coverage"] == 25 / 200


def test_personalize_metrics_names_and_averages():
    # given two users: one with hits at ranks 2 and 5 (of 2 relevant), one with no hit
    recommended = [np.array([10, 20, 30, 40, 50]), np.array([1, 2, 3])]
    relevant = [np.array([20, 50]), np.array([9])]
    # when the metrics are computed
    metrics = personalize_metrics(recommended, relevant, 16)
    # then they carry Personalize's names and are averaged over users
    assert set(metrics) == {
        "coverage",
        "mean_reciprocal_rank_at_25",
        *(f"normalized_discounted_cumulative_gain_at_{k}" for k in (5, 10, 25)),
        *(f"precision_at_{k}" for k in (5, 10, 25)),
    }
    assert metrics["normalized_discounted_cumulative_gain_at_5"] == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3)) / 2
    )
    assert metrics["precision_at_5"] == pytest.approx(0.2)
    assert metrics["mean_reciprocal_rank_at_25"] == pytest.approx(0.25)
    assert metrics["coverage"] == pytest.approx(8 / 16)
    assert metrics == pytest.approx(reference_metrics(recommended, relevant, 16))


# --- reference.py re-implemented without pandas ---------------------------------------------


def reference_split(rows: list[tuple[str, str, int]], seed: int = 42) -> tuple[list, dict, dict]:
    """reference.split: rows of (user, item, time) → train rows, history and relevant per test user."""
    order = sorted(range(len(rows)), key=lambda k: (rows[k][0], rows[k][2]))  # stable, like kind="stable"
    ordered = [rows[k] for k in order]
    counts: dict[str, int] = {}
    for user, _, _ in ordered:
        counts[user] = counts.get(user, 0) + 1
    eligible = np.sort(np.array([u for u, c in counts.items() if c >= 2]))
    rng = np.random.default_rng(seed)
    test_users = set(rng.permutation(eligible)[: math.ceil(0.1 * len(eligible))].tolist())
    history, relevant = {}, {}
    for user in sorted(test_users):
        items = [item for u, item, _ in ordered if u == user]
        n_rel = max(1, math.floor(0.1 * len(items)))
        history[user] = items[: len(items) - n_rel]
        relevant[user] = set(items[len(items) - n_rel :])
    return [r for r in ordered if r[0] not in test_users], history, relevant


def reference_metrics(ranked: list, relevant: list, n_items: int) -> dict[str, float]:
    """reference.metrics over lists (top 25 used)."""
    out = {f"precision_at_{k}": 0.0 for k in (5, 10, 25)}
    out.update({f"normalized_discounted_cumulative_gain_at_{k}": 0.0 for k in (5, 10, 25)})
    out["mean_reciprocal_rank_at_25"] = 0.0
    seen: set = set()
    for top, rel in zip(ranked, relevant, strict=True):
        top, rel = list(top)[:25], set(np.asarray(rel).tolist())
        seen.update(top)
        hits = [1.0 if i in rel else 0.0 for i in top]
        for k in (5, 10, 25):
            out[f"precision_at_{k}"] += sum(hits[:k]) / k
            dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits[:k]))
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
            out[f"normalized_discounted_cumulative_gain_at_{k}"] += dcg / idcg
        first = next((r for r, h in enumerate(hits) if h), None)
        out["mean_reciprocal_rank_at_25"] += 0.0 if first is None else 1.0 / (first + 1)
    out = {k: v / len(relevant) for k, v in out.items()}
    out["coverage"] = len(seen) / n_items
    return out


def synthetic_rows(seed: int = 3) -> list[tuple[str, str, int]]:
    """String ids that sort differently from their first-seen order, repeated items, time ties."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(137):
        user = f"u{rng.integers(0, 10**6)}"
        for _ in range(int(rng.integers(1, 25))):
            rows.append((user, f"i{int(rng.integers(0, 60))}", int(rng.integers(0, 40))))  # many ties
        if u % 7 == 0:
            rows.append((user, "i0", 0))
    order = rng.permutation(len(rows))
    return [rows[k] for k in order]


def as_data(rows: list[tuple[str, str, int]]) -> tuple[InteractionData, np.ndarray, np.ndarray]:
    """Dense indices in first-seen order (deliberately not sorted), plus the id arrays."""
    user_ids = list(dict.fromkeys(r[0] for r in rows))
    item_ids = list(dict.fromkeys(r[1] for r in rows))
    uindex = {u: k for k, u in enumerate(user_ids)}
    iindex = {i: k for k, i in enumerate(item_ids)}
    data = InteractionData(
        user=np.array([uindex[r[0]] for r in rows], dtype=np.int32),
        item=np.array([iindex[r[1]] for r in rows], dtype=np.int32),
        timestamp=np.array([r[2] for r in rows], dtype=np.int64),
        n_users=len(user_ids),
        n_items=len(item_ids),
    )
    return data, np.array(user_ids), np.array(item_ids)


def test_holdout_reproduces_reference_split():
    # given interactions with string ids, time ties and repeated items
    rows = synthetic_rows()
    data, user_ids, item_ids = as_data(rows)
    # when both splits run
    train_rows, history, relevant = reference_split(rows)
    split = holdout_split(data, user_ids=user_ids)
    # then the same users are held out, in sorted id order
    assert user_ids[split.test_users].tolist() == sorted(history)
    # and each test user's history (order included) and relevant set are the same
    for user, hist, rel in zip(split.test_users, split.history, split.relevant, strict=True):
        assert item_ids[hist.item].tolist() == history[user_ids[user]]
        assert set(item_ids[rel].tolist()) == relevant[user_ids[user]]
        assert (np.diff(hist.timestamp) >= 0).all()
    # and the training events are exactly the other users' events
    got = sorted(
        zip(
            user_ids[split.train.user],
            item_ids[split.train.item],
            split.train.timestamp.tolist(),
            strict=False,
        )
    )
    assert got == sorted(train_rows)


def test_holdout_sizes_follow_the_protocol():
    # given the synthetic data
    data, user_ids, _ = as_data(synthetic_rows())
    split = holdout_split(data, user_ids=user_ids)
    eligible = int((np.bincount(data.user, minlength=data.n_users) >= 2).sum())
    # then ceil(10%) of eligible users are held out, each with ≥1 history and ≥1 relevant event
    assert len(split.test_users) == math.ceil(0.1 * eligible)
    for user, hist in zip(split.test_users, split.history, strict=True):
        n = int((data.user == user).sum())
        assert len(hist.item) == n - max(1, math.floor(0.1 * n)) >= 1


def test_holdout_without_ids_sorts_by_index():
    # given no external ids / then the permutation runs over the sorted indices
    data, _, _ = as_data(synthetic_rows())
    split = holdout_split(data)
    eligible = np.flatnonzero(np.bincount(data.user, minlength=data.n_users) >= 2)
    expected = np.sort(np.random.default_rng(42).permutation(eligible)[: math.ceil(0.1 * len(eligible))])
    np.testing.assert_array_equal(split.test_users, expected)


def test_validation_split_never_touches_test_users():
    # given the holdout and the validation split of the same data
    data, user_ids, _ = as_data(synthetic_rows())
    split = holdout_split(data, user_ids=user_ids)
    validation = validation_split(data, user_ids=user_ids)
    # then no test user appears anywhere in the validation split
    test_users = set(split.test_users.tolist())
    assert not test_users & set(validation.test_users.tolist())
    assert not test_users & set(validation.train.user.tolist())
    # and validation users are training users, held out of the validation training data
    assert set(validation.test_users.tolist()) <= set(split.train.user.tolist())
    assert not set(validation.test_users.tolist()) & set(validation.train.user.tolist())


# --- the evaluation runner -------------------------------------------------------------------


class FixedList(Recipe):
    """A test recipe: the user's history items first, then a fixed list."""

    name = "test-fixed-list"

    def __init__(self, fixed: np.ndarray, hyperparameters: dict[str, str] | None = None, *, seed: int = 42):
        super().__init__(hyperparameters, seed=seed)
        self.fixed = fixed
        self.requested: list[int] = []

    def fit(self, data: InteractionData) -> None:
        self.fitted_users = set(np.unique(data.user).tolist())

    def recommend(self, history: History, *, n: int, candidates=None, now=None) -> Recommendation:
        self.requested.append(n)
        index = np.concatenate([np.unique(history.item), self.fixed[~np.isin(self.fixed, history.item)]])[:n]
        return Recommendation(index.astype(np.int32), -np.arange(len(index), dtype=np.float32))

    def _save(self, folder: Path) -> dict[str, Any]:
        return {}

    def _load(self, folder: Path, state: dict[str, Any], *, mmap: bool) -> None:
        pass


def test_evaluate_drops_history_items_and_scores_the_top_25(planted_data):
    # given a recipe that puts the user's history first, then a fixed list
    fixed = np.arange(planted_data.n_items)[::-1].copy()
    recipes: list[FixedList] = []

    def factory() -> FixedList:
        recipes.append(FixedList(fixed))
        return recipes[-1]

    # when it is evaluated
    metrics = evaluate(factory, planted_data)
    # then the history was dropped: the figures are those of the fixed list minus each history
    split = holdout_split(planted_data)
    expected_lists = [fixed[~np.isin(fixed, h.item)][:25] for h in split.history]
    n_items = len(np.unique(planted_data.item))
    assert metrics == pytest.approx(reference_metrics(expected_lists, list(split.relevant), n_items))
    # and it asked for 25 + the number of distinct history items, having trained without test users
    assert recipes[0].requested == [25 + len(np.unique(h.item)) for h in split.history]
    assert not recipes[0].fitted_users & set(split.test_users.tolist())


def test_evaluate_popularity_beats_nothing_and_is_deterministic(planted_data):
    # given the popularity recipe on the planted data
    first = evaluate(PopularityCount, planted_data)
    second = evaluate(PopularityCount, planted_data)
    # then the figures are in range and repeatable
    assert first == second
    assert all(0.0 <= v <= 1.0 for v in first.values())
    assert first["coverage"] > 0


def test_sims_beats_popularity_on_planted_genres(planted_data):
    # given users who stick to one genre / then item-to-item beats global popularity
    split = holdout_split(planted_data)
    n_items = len(np.unique(planted_data.item))
    pop = evaluate_holdout(PopularityCount, split, n_items)
    sims = evaluate_holdout(
        lambda: Sims({"min_cointeraction_count": "1", "max_item_interaction_count_percentile": "1.0"}),
        split,
        n_items,
    )
    assert (
        sims["normalized_discounted_cumulative_gain_at_10"]
        > pop["normalized_discounted_cumulative_gain_at_10"]
    )


def test_tune_picks_the_best_candidate_on_the_validation_split(planted_data):
    # given two SIMS settings
    candidates = [{"popularity_discount_factor": "0.0"}, {"popularity_discount_factor": "0.5"}]
    # when tuned
    best, trials = tune(Sims, planted_data, candidates)
    # then every candidate was tried and the best by NDCG@10 is returned
    assert [t[0] for t in trials] == candidates
    scores = [t[1]["normalized_discounted_cumulative_gain_at_10"] for t in trials]
    assert best == candidates[int(np.argmax(scores))]
