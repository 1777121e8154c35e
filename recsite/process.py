"""Start-up of a serving process (recsite.wsgi, recsite.asgi): load everything, then freeze it.

Once the project is loaded (settings, apps, URLconf, GraphQL schema), what loading allocated is
taken out of the garbage collector's sight with `gc.freeze()`: those objects live as long as the
process, and otherwise every full collection walks all of them, a 50-120 ms pause that was the p99
of the load test (benchmarks/load.py).
"""

import gc

from django.urls import get_resolver

__all__ = ["load_and_freeze"]


def load_and_freeze() -> None:
    """Import the URLconf (and, through it, the schema), then freeze every object allocated so far."""
    get_resolver().url_patterns  # noqa: B018 - the import is the point
    gc.freeze()
