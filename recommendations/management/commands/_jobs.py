"""Shared by the Personalize and batch job commands: wait for a job row to finish, printing progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import current_app
from django.conf import settings
from django.db.models import Model

__all__ = ["wait_for"]


def wait_for(*, model: type[Model], pk: int, rerun: Callable[[], Any], write: Callable[[str], None]) -> Any:
    """Re-read the row until ACTIVE or CREATE FAILED; with tasks in-process, run its task again meanwhile.

    In-process is the Celery app's own `task_always_eager` (what `delay` obeys), not the setting it
    started from: tests and callers may switch it.
    """
    eager = bool(current_app.conf.task_always_eager)
    seconds = int(getattr(settings, "PERSONALIZE_POLL_SECONDS", 60))
    last, just_ran = None, False
    while True:
        row = model.objects.get(pk=pk)
        if row.status != last:
            write(f"  {row} is {row.status}")
            last = row.status
        if row.status in ("ACTIVE", "CREATE FAILED"):
            return row
        if eager and not just_ran:
            rerun()  # the task is idempotent: a finished job returns at once
            just_ran = True
            continue
        time.sleep(seconds)
        just_ran = False
