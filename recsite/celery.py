"""Celery application configured from Django settings (`CELERY_*`).

Without `CELERY_BROKER_URL`, settings make every task run in-process.
"""

import os

from celery import Celery

__all__ = ["app"]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

app = Celery("recsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
