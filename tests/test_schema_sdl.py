"""docs/schema.graphql is the GraphQL API the code serves: the checked-in SDL never drifts from it."""

import difflib
import io
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from strawberry.printer import print_schema

from recsite.schema import schema

SDL_FILE = Path(settings.BASE_DIR) / "docs" / "schema.graphql"
EXPORT_COMMAND = "python manage.py export_schema recsite.schema --path docs/schema.graphql"


def test_the_checked_in_sdl_is_the_schema_the_api_serves() -> None:
    # Given the SDL in git and the schema /graphql/ serves
    checked_in = SDL_FILE.read_text(encoding="utf-8")
    served = print_schema(schema)
    # When they are compared
    diff = "".join(
        difflib.unified_diff(
            checked_in.splitlines(keepends=True),
            served.splitlines(keepends=True),
            "docs/schema.graphql",
            "served",
        )
    )
    # Then they are the same (after a schema change, run the export command and commit the file)
    assert not diff, f"docs/schema.graphql is out of date; run `{EXPORT_COMMAND}`:\n{diff}"


def test_the_export_command_writes_what_the_check_compares(tmp_path: Path) -> None:
    # Given the command the docs name for exporting the SDL
    out = tmp_path / "schema.graphql"
    # When it is run
    call_command("export_schema", "recsite.schema", "--path", str(out), stdout=io.StringIO())
    # Then it writes the served schema's SDL, with the operations of the public API in it
    text = out.read_text(encoding="utf-8")
    assert text == print_schema(schema)
    for operation in (
        "recommendations(",
        "relatedItems(",
        "personalizedRanking(",
        "userSegment(",
        "putEvents(",
    ):
        assert operation in text
