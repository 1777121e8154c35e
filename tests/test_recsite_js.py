"""recsite.js, the browser tracking snippet: its Node unit tests, and a real run against /graphql/.

Both need Node.js (`node` on PATH, version 18 or later for `node --test` and `fetch`); without it
they skip, saying so. The unit tests (tests/js/) use fakes for fetch, sendBeacon and storage; the
end-to-end test runs the snippet in Node against a live Recsite server and reads the database.
"""

import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

from catalog.models import Interaction
from catalog.selectors import dataset_group_get
from recommendations.tracking import event_tracker_create

ROOT = Path(settings.BASE_DIR)
SNIPPET = ROOT / "recommendations" / "static" / "recsite" / "recsite.js"
NODE = shutil.which("node")

needs_node = pytest.mark.skipif(
    NODE is None, reason="Node.js is not installed: the recsite.js tests need `node`"
)


def node(*args: str, script: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run node with these arguments (or this script on stdin); its completed process."""
    return subprocess.run(
        [NODE or "node", *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@needs_node
def test_the_node_unit_tests_of_recsite_js_pass() -> None:
    # Given the snippet's unit tests (fakes for fetch, sendBeacon, storage, the document)
    # When Node's test runner runs them
    result = node("--test", "tests/js/")
    # Then all pass, and there are some
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout


def test_the_snippet_is_a_static_file_of_recsite() -> None:
    # Given Django's static file finders
    # When recsite/recsite.js is looked up (STATIC_URL + this path is where pages load it from)
    found = finders.find("recsite/recsite.js")
    # Then it is the snippet
    assert found is not None and Path(found) == SNIPPET
    assert f"/{settings.STATIC_URL.strip('/')}/recsite/recsite.js" == "/static/recsite/recsite.js"


@pytest.mark.django_db
def test_the_snippet_is_served_at_its_static_url_in_debug(settings: Any) -> None:
    # Given the static files view runserver uses with debug on (as with `make run`)
    settings.DEBUG = True
    from django.contrib.staticfiles.views import serve

    # When a page's <script src="/static/recsite/recsite.js"> is requested

    response = serve(Client().get("/").wsgi_request, "recsite/recsite.js")
    # Then the snippet comes back
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and b"createClient" in body


@needs_node
@pytest.mark.django_db(transaction=True)
def test_the_snippet_records_batched_events_with_impressions_on_a_live_server(live_server: Any) -> None:
    # Given a live Recsite with an event tracker
    group = dataset_group_get()  # (re)created: an earlier transactional test's flush removes it
    tracker = event_tracker_create(dataset_group=group, name="web")
    endpoint = f"{live_server.url}/graphql/"
    # When a page (here Node, whose fetch is the browser's) shows a list, then tracks 12 events
    script = textwrap.dedent(
        f"""
        const recsite = require({json.dumps(str(SNIPPET))});
        const storage = new Map();
        recsite.init({{
          endpoint: {json.dumps(endpoint)},
          trackingId: {json.dumps(tracker.tracking_id)},
          userId: "visitor-1",
          flushInterval: 0,
          storage: {{ getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, v),
                      removeItem: (k) => storage.delete(k) }},
          onError: (errors) => {{ console.error(JSON.stringify(errors)); process.exitCode = 1; }},
        }});
        recsite.impressions("rec-abc", ["item-1", "item-2", "item-3"]);
        recsite.track("click", {{ itemId: "item-2" }});
        for (let n = 0; n < 10; n++) recsite.track("view", {{ itemId: `item-${{n + 10}}` }});
        recsite.track("purchase", {{ itemId: "item-2", eventValue: 19.5 }});
        recsite.flush().then(() => console.log(JSON.stringify({{ sessionId: recsite.sessionId }})));
        """
    )
    result = node("-", script=script)
    # Then Recsite stored all 12, for the user and the snippet's session
    assert result.returncode == 0, result.stdout + result.stderr
    session_id = json.loads(result.stdout.strip().splitlines()[-1])["sessionId"]
    events = Interaction.objects.filter(dataset_group=group).select_related("user", "item").order_by("pk")
    assert events.count() == 12
    assert {(e.user.user_id, e.session_id) for e in events} == {("visitor-1", session_id)}
    # and the click on a shown item points to its list, with the list as the impression
    click = events[0]
    assert (click.event_type, click.item.item_id, click.recommendation_id) == ("click", "item-2", "rec-abc")
    assert list(click.impression) == ["item-1", "item-2", "item-3"]
    purchase = events.last()
    assert (purchase.event_type, purchase.event_value) == ("purchase", 19.5)
