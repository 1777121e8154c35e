"""ASGI entry point (uvicorn recsite.asgi:application), loaded and frozen before the first request."""

import os

from django.core.asgi import get_asgi_application

from recsite.process import load_and_freeze

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
application = get_asgi_application()
load_and_freeze()
