"""The WSGI and ASGI entry points load the whole project, then freeze it out of the GC's sight."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import gc, importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps({"frozen": gc.get_freeze_count(), "schema_loaded": "recsite.schema" in sys.modules}))
"""


@pytest.mark.parametrize("entry_point", ["recsite.wsgi", "recsite.asgi"])
def test_loading_the_application_imports_the_schema_and_freezes_what_loading_allocated(
    entry_point: str,
) -> None:
    # Given a fresh interpreter, when it imports the entry point as gunicorn or uvicorn does
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "recsite.settings"}
    environment.setdefault("DJANGO_SECRET_KEY", "wsgi-test")
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, entry_point],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    loaded = json.loads(probe.stdout.strip().splitlines()[-1])
    # Then the schema was imported before the first request and the startup objects are frozen
    # (the project's own objects number well over 50,000; an unfrozen process reports 0)
    assert loaded["schema_loaded"] is True
    assert loaded["frozen"] > 50_000
