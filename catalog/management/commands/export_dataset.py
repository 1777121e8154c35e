"""`manage.py export_dataset`: write a dataset group as Personalize CSVs and Avro schemas."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.errors import CatalogError
from catalog.exporting import dataset_export
from catalog.models import DEFAULT_DATASET_GROUP


class Command(BaseCommand):
    """Export interactions.csv, items.csv, users.csv and their schemas to a folder."""

    help = "Export a dataset group in Amazon Personalize's CSV format with Avro schema JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, required=True, help="folder to write (created if missing)")
        parser.add_argument("--dataset-group", default=DEFAULT_DATASET_GROUP)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = dataset_export(dataset_group=options["dataset_group"], out=options["out"])
        except CatalogError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(report.summary())
