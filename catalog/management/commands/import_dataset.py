"""`manage.py import_dataset`: load Amazon Personalize CSV files into a dataset group."""

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.errors import CatalogError
from catalog.importing import dataset_import
from catalog.models import DEFAULT_DATASET_GROUP, ImportMode


class Command(BaseCommand):
    """Import interactions, items and users CSVs; all or nothing."""

    help = "Import Amazon Personalize CSV files (interactions, items, users) into a dataset group."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interactions", type=Path, help="interactions CSV (USER_ID,ITEM_ID,TIMESTAMP,...)"
        )
        parser.add_argument("--items", type=Path, help="items CSV (ITEM_ID,<metadata>...)")
        parser.add_argument("--users", type=Path, help="users CSV (USER_ID,<metadata>...)")
        parser.add_argument(
            "--mode",
            choices=ImportMode.values,
            default=ImportMode.FULL,
            help="full replaces the bulk data of the given datasets; incremental upserts",
        )
        parser.add_argument("--dataset-group", default=DEFAULT_DATASET_GROUP)

    def handle(self, *args: Any, **options: Any) -> None:
        if not any(options[name] for name in ("interactions", "items", "users")):
            raise CommandError("give at least one of --interactions, --items, --users")
        try:
            report = dataset_import(
                dataset_group=options["dataset_group"],
                interactions=options["interactions"],
                items=options["items"],
                users=options["users"],
                mode=options["mode"],
                progress=sys.stderr.isatty(),
            )
        except CatalogError as error:
            raise CommandError(f"{error}\nNothing was imported.") from None
        self.stdout.write(report.summary())
