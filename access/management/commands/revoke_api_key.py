"""manage.py revoke_api_key KEY_ID: refuse every later request made with the key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.services import ApiKeyError, api_key_revoke

__all__ = ["Command"]


class Command(BaseCommand):
    """Revoke an API key by its key id."""

    help = "Revoke an API key (by its key id, e.g. RSK...); requests with it are refused from now on."

    def add_arguments(self, parser: CommandParser) -> None:
        """The key id."""
        parser.add_argument("key_id")

    def handle(self, *args: Any, **options: Any) -> None:
        """Revoke and confirm."""
        try:
            api_key = api_key_revoke(key_id=options["key_id"])
        except ApiKeyError as error:
            raise CommandError(str(error)) from error
        when = f"{api_key.revoked_at:%Y-%m-%d %H:%M:%S %Z}"
        self.stdout.write(f"Revoked API key {api_key.name!r} ({api_key.key_id}) at {when}.")
