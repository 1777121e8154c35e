"""Training time, peak memory and request latency of aws-user-personalization on synthetic data.

Usage: .venv/bin/python benchmarks/engine_speed.py [--sizes 1000000,10000000] [--items 100000] [--threads 2]
Each size is fitted in a fresh subprocess so its peak RSS (getrusage) is its own. Interactions are
power-law over items (Zipf-like, exponent 1.0) and users (about 20 events each), timestamps over
a year; latency is measured at the first size over `--requests` random users' histories.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommendations.engine.base import History, InteractionData
from recommendations.engine.user_personalization import UserPersonalization

__all__ = ["main", "run_one", "synthetic"]


def synthetic(n_events: int, n_items: int, seed: int = 0) -> InteractionData:
    """Power-law synthetic interactions: items by rank^-1, users by rank^-0.5, ~20 events per user."""
    rng = np.random.default_rng(seed)
    n_users = max(1, n_events // 20)
    item_p = 1.0 / np.arange(1, n_items + 1)
    user_p = 1.0 / np.sqrt(np.arange(1, n_users + 1))
    item = rng.choice(n_items, size=n_events, p=item_p / item_p.sum()).astype(np.int32)
    user = rng.choice(n_users, size=n_events, p=user_p / user_p.sum()).astype(np.int32)
    timestamp = rng.integers(1_700_000_000, 1_700_000_000 + 365 * 86_400, size=n_events, dtype=np.int64)
    return InteractionData(user=user, item=item, timestamp=timestamp, n_users=n_users, n_items=n_items)


def numpy_floor_ms(n_items: int, requests: int, dims: int = 64) -> float:
    """The baseline in the same run: p50 of one (items x 64) float32 mat-vec plus a top-25 argpartition."""
    rng = np.random.default_rng(2)
    factors = rng.standard_normal((n_items, dims), dtype=np.float32)
    vectors = rng.standard_normal((requests, dims), dtype=np.float32)
    elapsed = []
    for vector in vectors:
        t = time.perf_counter()
        scores = factors @ vector
        top = np.argpartition(-scores, 25)[:25]
        top[np.argsort(-scores[top])]
        elapsed.append(time.perf_counter() - t)
    return float(np.percentile(elapsed, 50) * 1000)


def run_one(n_events: int, n_items: int, threads: int, requests: int) -> dict[str, float]:
    """Generate, fit, and (when requests > 0) time recommend; returns the figures."""
    threadpool_limits(threads)
    data = synthetic(n_events, n_items)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    recipe = UserPersonalization()
    recipe.fit(data)
    fit_seconds = time.perf_counter() - start
    out = {
        "events": n_events,
        "items": n_items,
        "users": data.n_users,
        "fit_seconds": fit_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_fit_mb": rss_before,
    }
    if requests:
        rng = np.random.default_rng(1)
        order = np.argsort(data.user, kind="stable")
        starts = np.searchsorted(data.user[order], np.arange(data.n_users + 1))
        users = rng.integers(0, data.n_users, size=requests)
        histories = []
        for u in users:
            rows = order[starts[u] : starts[u + 1]]
            rows = rows[np.argsort(data.timestamp[rows], kind="stable")]
            histories.append(History(data.item[rows], data.timestamp[rows]))
        for kind, kwargs in (("recommend", {}), ("recommend_explore", {"exploration_weight": 0.3})):
            for history in histories[:50]:
                recipe.recommend(history, n=25, **kwargs)
            elapsed = []
            for history in histories:
                t = time.perf_counter()
                recipe.recommend(history, n=25, **kwargs)
                elapsed.append(time.perf_counter() - t)
            out[f"{kind}_p50_ms"] = float(np.percentile(elapsed, 50) * 1000)
            out[f"{kind}_p99_ms"] = float(np.percentile(elapsed, 99) * 1000)
        out["mean_history_length"] = float(np.mean([len(h.item) for h in histories]))
        out["numpy_floor_p50_ms"] = numpy_floor_ms(n_items, requests)
        out["recommend_over_floor"] = out["recommend_p50_ms"] / out["numpy_floor_p50_ms"]
    return out


def main() -> None:
    """Run every size in its own subprocess and print one line of figures per size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.items, args.threads, args.requests)))
        return
    for k, size in enumerate(int(s) for s in args.sizes.split(",")):
        command = [sys.executable, __file__, "--one", str(size), "--items", str(args.items)]
        command += ["--threads", str(args.threads), "--requests", str(args.requests if k == 0 else 0)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
