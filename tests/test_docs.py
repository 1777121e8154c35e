"""The docs: every relative link of README.md and docs/*.md points to a file of the repository."""

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_to_files_of_the_repository(page: Path) -> None:
    # Given a page's links that are not URLs
    targets = [t for t in LINK.findall(page.read_text(encoding="utf-8")) if not re.match(r"[a-z]+:", t)]
    # When each is resolved from the page's folder (an #anchor stripped)
    paths = [(page.parent / target.split("#")[0]).resolve() for target in targets if target.split("#")[0]]
    missing = [path for path in paths if not path.is_relative_to(ROOT) or not path.exists()]
    # Then each names a file inside the repository
    assert not missing, f"{page.name}: links to nothing in the repository: {missing}"


def test_the_readme_lists_every_doc() -> None:
    # Given the README's Docs list and the pages in docs/
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # Then every page is linked from it
    assert "## Docs" in readme
    for page in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
