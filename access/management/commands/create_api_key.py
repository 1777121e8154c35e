"""manage.py create_api_key --scopes recommend,track,manage [--name N]: create a key and print it once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.models import SCOPES
from access.services import ApiKeyError, api_key_create

__all__ = ["Command"]


class Command(BaseCommand):
    """Create an API key; its secret is printed once and never stored in clear."""

    help = "Create an API key with scopes (recommend, track, manage) and print its secret once."

    def add_arguments(self, parser: CommandParser) -> None:
        """--scopes (required, comma-separated) and --name."""
        parser.add_argument(
            "--scopes",
            required=True,
            help=f"comma-separated, of {', '.join(SCOPES)} (manage includes the others)",
        )
        parser.add_argument("--name", default="api-key", help="what uses the key (shown in the admin)")

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the key and print the Bearer token and the SigV4 pair."""
        try:
            issued = api_key_create(name=options["name"], scopes=options["scopes"])
        except ApiKeyError as error:
            raise CommandError(str(error)) from error
        key = issued.api_key
        self.stdout.write(
            f"Created API key {key.name!r} ({key.key_id}) with scopes {key.scopes.replace(',', ', ')}.\n"
            "Copy it now: the secret is not stored and will not be shown again.\n"
            f"  GraphQL:  Authorization: Bearer {issued.token}\n"
            f"  boto3 (the Personalize-compatible endpoint): aws_access_key_id={key.key_id} "
            f"aws_secret_access_key={issued.secret}\n"
            f"Revoke it with: manage.py revoke_api_key {key.key_id}"
        )
