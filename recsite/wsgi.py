"""WSGI entry point (gunicorn recsite.wsgi).

Once the project is loaded (settings, apps, URLconf, GraphQL schema), everything loading allocated
is taken out of the garbage collector's sight with `gc.freeze()`: those objects live as long as the
process, and otherwise every full collection walks all of them, a 50-120 ms pause that was the p99
of the load test (benchmarks/load.py).
"""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 - imports the URLconf and, through it, the schema
gc.freeze()
