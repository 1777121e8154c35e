"""Offline quality of the model-based recipes on ml-100k with the shared protocol (PROTOCOL.md).

Usage: .venv/bin/python benchmarks/quality.py [INTER_FILE] [--hyperparameters k=v,...] [--tune BUDGET]
Prints Personalize's metrics for a popularity baseline, aws-user-personalization and
aws-personalized-ranking (re-ranking the full catalogue), with fit and request timings.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommendations.engine.base import History, InteractionData
from recommendations.engine.ranking import PersonalizedRanking
from recommendations.engine.user_personalization import UserPersonalization

__all__ = ["load_inter", "main", "metrics", "protocol_split"]

DEFAULT_PATH = "/work/shared/datasets/ml-100k/ml-100k.inter"
KS = (5, 10, 25)


def load_inter(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """User ids, item ids (strings) and timestamps from a RecBole .inter file (tab-separated, header)."""
    users, items, times = [], [], []
    with open(path, encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            users.append(fields[0])
            items.append(fields[1])
            times.append(float(fields[3]))
    return np.array(users), np.array(items), np.array(times).astype(np.int64)


def protocol_split(users: np.ndarray, items: np.ndarray, times: np.ndarray, seed: int = 42):
    """PROTOCOL.md: training rows mask, and per test user (history rows, relevant item ids)."""
    user_ids, user_index = np.unique(users, return_inverse=True)
    order = np.lexsort((times, user_index))  # stable: ties keep file order
    counts = np.bincount(user_index)
    eligible = user_ids[counts >= 2]  # sorted unique ids
    test_ids = np.random.default_rng(seed).permutation(eligible)[: math.ceil(0.1 * len(eligible))]
    is_test_user = np.isin(user_ids, test_ids)
    starts = np.concatenate(([0], np.cumsum(counts)))
    cases = {}
    for u in np.flatnonzero(is_test_user):
        rows = order[starts[u] : starts[u + 1]]
        n_relevant = max(1, math.floor(0.1 * len(rows)))
        cases[user_ids[u]] = (
            rows[: len(rows) - n_relevant],
            set(items[rows[len(rows) - n_relevant :]].tolist()),
        )
    return ~is_test_user[user_index], cases


def metrics(ranked: dict[str, list[str]], relevant: dict[str, set[str]], n_items: int) -> dict[str, float]:
    """Personalize's metrics (precision, NDCG at 5/10/25, MRR@25, coverage) as PROTOCOL.md defines them."""
    out = {f"precision_at_{k}": 0.0 for k in KS}
    out.update({f"normalized_discounted_cumulative_gain_at_{k}": 0.0 for k in KS})
    out["mean_reciprocal_rank_at_25"] = 0.0
    seen: set[str] = set()
    for user, rel in relevant.items():
        top = list(ranked.get(user, []))[:25]
        seen.update(top)
        hits = [1.0 if i in rel else 0.0 for i in top]
        for k in KS:
            out[f"precision_at_{k}"] += sum(hits[:k]) / k
            dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits[:k]))
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
            out[f"normalized_discounted_cumulative_gain_at_{k}"] += dcg / idcg
        first = next((r for r, h in enumerate(hits) if h), None)
        out["mean_reciprocal_rank_at_25"] += 0.0 if first is None else 1.0 / (first + 1)
    n = len(relevant)
    out = {k: v / n for k, v in out.items()}
    out["coverage"] = len(seen) / n_items
    return out


def main() -> None:
    """Fit on the protocol's training users, query with test histories, print the metrics table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH)
    parser.add_argument("--hyperparameters", default="", help="comma-separated name=value pairs")
    parser.add_argument("--tune", type=int, default=0, help="HPO budget (fits) on a validation split")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    threadpool_limits(args.threads)
    hyperparameters = dict(p.split("=", 1) for p in args.hyperparameters.split(",") if p)

    users, items, times = load_inter(args.path)
    is_train, cases = protocol_split(users, items, times)
    item_ids = np.unique(items[is_train])
    item_index = {item: k for k, item in enumerate(item_ids)}
    train_users, train_user_index = np.unique(users[is_train], return_inverse=True)
    data = InteractionData(
        user=train_user_index.astype(np.int32),
        item=np.array([item_index[i] for i in items[is_train]], dtype=np.int32),
        timestamp=times[is_train],
        n_users=len(train_users),
        n_items=len(item_ids),
    )
    n_items_total = len(np.unique(items))
    relevant = {u: rel for u, (_, rel) in cases.items()}
    histories = {}
    for user, (rows, _) in cases.items():
        known = [r for r in rows if items[r] in item_index]
        histories[user] = History(
            np.array([item_index[items[r]] for r in known], dtype=np.int32), times[known].astype(np.int64)
        )
    print(
        f"{args.path}: {len(users)} interactions, {len(np.unique(users))} users, {n_items_total} items; "
        f"{len(cases)} test users"
    )

    def ranked_lists(recommend) -> tuple[dict[str, list[str]], float]:
        out, elapsed = {}, []
        for user, history in histories.items():
            candidates = np.ones(data.n_items, dtype=bool)
            candidates[history.item] = False
            start = time.perf_counter()
            index = recommend(history, candidates)
            elapsed.append(time.perf_counter() - start)
            out[user] = [item_ids[i] for i in index]
        return out, float(np.median(elapsed) * 1000)

    results, timing = {}, {}
    popularity = np.zeros(data.n_items)
    pairs = np.unique(np.stack([data.user, data.item]), axis=1)
    np.add.at(popularity, pairs[1], 1.0)
    ranked, ms = ranked_lists(lambda h, c: np.argsort(-np.where(c, popularity, -np.inf), kind="stable")[:25])
    results["popularity"], timing["popularity"] = metrics(ranked, relevant, n_items_total), (0.0, ms)

    if args.tune:
        start = time.perf_counter()
        hyperparameters = UserPersonalization.tune(data, args.tune, base=hyperparameters)
        print(f"tuned in {time.perf_counter() - start:.1f} s: {hyperparameters}")
    everything = np.arange(data.n_items)
    for label, cls in (
        ("user-personalization", UserPersonalization),
        ("personalized-ranking", PersonalizedRanking),
    ):
        recipe = cls(hyperparameters)
        start = time.perf_counter()
        recipe.fit(data)
        fit_seconds = time.perf_counter() - start
        if cls is UserPersonalization:
            ranked, ms = ranked_lists(lambda h, c, r=recipe: r.recommend(h, n=25, candidates=c).index)
        else:
            ranked, ms = ranked_lists(lambda h, c, r=recipe: r.rank(h, everything[c]).index[:25])
        results[label], timing[label] = metrics(ranked, relevant, n_items_total), (fit_seconds, ms)

    print(f"hyperparameters: {UserPersonalization(hyperparameters).hyperparameters}")
    print(f"{'metric':48s}" + "".join(f"{k:>22s}" for k in results))
    for name in results["popularity"]:
        print(f"{name:48s}" + "".join(f"{results[k][name]:22.4f}" for k in results))
    print(f"{'fit seconds':48s}" + "".join(f"{timing[k][0]:22.3f}" for k in results))
    print(f"{'request ms p50':48s}" + "".join(f"{timing[k][1]:22.3f}" for k in results))


if __name__ == "__main__":
    main()
