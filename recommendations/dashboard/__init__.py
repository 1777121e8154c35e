"""The operators' dashboard in the Django admin: events, items, solutions, campaigns, the outbox, failures.

`selectors` reads each panel with one bounded query, `charts` draws the panels' charts with
matplotlib (SVG, rendered on the server), `views` serves the page and its actions (train a version,
deploy a version, create a filter with live validation), staff only, under `/admin/dashboard/`.
"""

__all__: list[str] = []
