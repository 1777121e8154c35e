"""WSGI entry point (gunicorn recsite.wsgi): the project loaded and frozen before the first request."""

import os

from django.core.wsgi import get_wsgi_application

from recsite.process import load_and_freeze

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
application = get_wsgi_application()
load_and_freeze()
