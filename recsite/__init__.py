"""Recsite: a self-hostable personalization backend."""

from recsite.celery import app as celery_app

__all__ = ["celery_app"]
