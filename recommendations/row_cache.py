"""Per-process copies of the rows every request reads (campaigns, filters), at most a second old.

Serving reads a campaign, and often a filter, on every request; both change rarely. Each process
keeps the rows it has read for `RECSITE_SERVING_CACHE_SECONDS` (0 reads them on every request).
Saving or deleting a campaign, solution version or filter in this process forgets them at once
(signals, and `campaigns_follow_version`); other processes see a change within that time. Cached
rows are shared by threads: callers read them and never modify them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

__all__ = ["cached_row", "row_cache_clear"]

_T = TypeVar("_T")
_MAX_ROWS = 1024

_lock = threading.Lock()
_rows: dict[tuple, tuple[float, Any]] = {}  # key -> (read at, row)


def cached_row(key: tuple, load: Callable[[], _T]) -> _T:
    """The row under `key`, read with `load` when missing or older than the cache's lifetime."""
    ttl = float(getattr(settings, "RECSITE_SERVING_CACHE_SECONDS", 1.0))
    now = time.monotonic()
    remembered = _rows.get(key)
    if ttl > 0 and remembered is not None and now - remembered[0] < ttl:
        return remembered[1]
    row = load()
    with _lock:
        if len(_rows) >= _MAX_ROWS:
            _rows.clear()
        _rows[key] = (now, row)
    return row


def row_cache_clear(**_signal: Any) -> None:
    """Forget every cached row of this process (connected to the models' save and delete signals)."""
    with _lock:
        _rows.clear()
