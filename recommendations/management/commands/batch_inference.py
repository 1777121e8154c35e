"""`manage.py batch_inference --solution S --input F --output F [--segment] [--filter N] [--num-results N]`.

Locally the input file is answered by the solution's newest ACTIVE version and the output file
written in Personalize's format; for a version trained on Personalize, --input and --output are
s3:// paths and the job runs on Personalize.
"""

from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from recommendations.batch import batch_job_create
from recommendations.errors import PersonalizeError, RecommendationError
from recommendations.filtering import filter_get
from recommendations.management.commands._jobs import wait_for
from recommendations.models import BatchJob, BatchJobKind
from recommendations.personalize_tasks import batch_job_task
from recommendations.selectors import solution_get, solution_version_latest

__all__ = ["Command"]


class Command(BaseCommand):
    """Run a batch inference (or, with --segment, batch segment) job and write its output."""

    help = "Batch recommendations (JSON lines in, JSON lines out), locally or on Amazon Personalize."

    def add_arguments(self, parser: CommandParser) -> None:
        """--solution, --input, --output, --name, --segment, --filter, --num-results, --wait."""
        parser.add_argument("--solution", required=True, help="Solution name (its newest ACTIVE version).")
        parser.add_argument(
            "--input", required=True, help="JSON-lines file (or s3://bucket/key on Personalize)."
        )
        parser.add_argument(
            "--output", required=True, help="Output file (or s3://bucket/folder/ on Personalize)."
        )
        parser.add_argument("--name", help="Job name (default: <solution>-batch-<n>).")
        parser.add_argument("--segment", action="store_true", help="A batch segment job (users per item).")
        parser.add_argument("--filter", help="Filter name.")
        parser.add_argument("--num-results", type=int, default=25)
        parser.add_argument("--wait", action="store_true", help="Wait for a Personalize job to finish.")

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the job, run it and report where the output is."""
        try:
            solution = solution_get(name=options["solution"])
            version = solution_version_latest(solution=solution)
            if version is None:
                raise CommandError(f"solution {solution.name!r} has no ACTIVE version")
            on_personalize = bool(version.personalize_arn) and not version.artifact
            source = options["input"]
            if not on_personalize:
                path = Path(source)
                if not path.is_file():
                    raise CommandError(f"input file {source} does not exist")
                with path.open("rb") as handle:
                    source = default_storage.save(f"batch/input/{path.name}", File(handle))
            name = options["name"] or f"{solution.name}-batch-{BatchJob.objects.count() + 1}"
            with transaction.atomic():
                job = batch_job_create(
                    kind=BatchJobKind.SEGMENT if options["segment"] else BatchJobKind.INFERENCE,
                    name=name[:63],
                    solution_version=version,
                    input_path=source,
                    output_path=options["output"] if on_personalize else "",
                    filter=filter_get(name=options["filter"]) if options["filter"] else None,
                    num_results=options["num_results"],
                )
        except (RecommendationError, PersonalizeError) as error:
            raise CommandError(str(error)) from None
        if options["wait"] or not on_personalize:
            wait_for(
                model=BatchJob,
                pk=job.pk,
                rerun=lambda: batch_job_task.delay(job.pk),
                write=self.stdout.write,
            )
        job.refresh_from_db()
        if job.status == "CREATE FAILED":
            raise CommandError(f"batch job {job.name} failed: {job.failure_reason}")
        if not on_personalize and job.status == "ACTIVE":
            with default_storage.open(job.output_path, "rb") as output:
                Path(options["output"]).write_bytes(output.read())
            self.stdout.write(f"Wrote {options['output']} ({job.records} lines, {job.errors} with an error)")
        else:
            self.stdout.write(f"{job}: output in {job.output_path}")
