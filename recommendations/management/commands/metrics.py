"""`manage.py metrics [--solution NAME] [--dataset-group NAME]`: each solution version's offline metrics."""

from collections.abc import Mapping
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.errors import RecommendationError
from recommendations.models import SolutionVersion
from recommendations.selectors import solution_get

__all__ = ["Command", "metrics_table", "version_summary"]


def metrics_table(metrics: Mapping[str, float]) -> str:
    """Metrics as aligned `name  value` lines (Personalize's names), or a note when there are none."""
    if not metrics:
        return "  (no offline metrics: segment recipes answer no per-user lists)"
    width = max(len(name) for name in metrics)
    return "\n".join(f"  {name:<{width}}  {value:.4f}" for name, value in sorted(metrics.items()))


def version_summary(version: SolutionVersion) -> str:
    """One line: version, status, training mode/type, seconds and counts."""
    line = (
        f"{version.solution.name} version {version.pk}: {version.status} "
        f"({version.training_mode}, {version.training_type})"
    )
    if version.training_seconds is not None:
        line += f", trained in {version.training_seconds:.2f} s"
    if version.interactions_count is not None:
        line += (
            f" on {version.interactions_count} interactions, {version.users_count} users, "
            f"{version.items_count} items"
        )
    if version.failure_reason:
        line += f"\n  {version.failure_reason}"
    return line


class Command(BaseCommand):
    """Print the offline metrics of every solution version (newest first)."""

    help = "Print Personalize's offline metrics of each solution version (optionally of one solution)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--solution", help="only this solution's versions")
        parser.add_argument("--dataset-group", help="only solutions of this dataset group")

    def handle(self, *args: Any, **options: Any) -> None:
        versions = SolutionVersion.objects.select_related("solution__dataset_group").order_by(
            "solution__name", "-created_at", "-id"
        )
        if options["solution"]:
            try:
                versions = versions.filter(solution=solution_get(name=options["solution"]))
            except RecommendationError as error:
                raise CommandError(str(error)) from None
        if options["dataset_group"]:
            versions = versions.filter(solution__dataset_group__name=options["dataset_group"])
        if not versions:
            self.stdout.write("No solution versions yet. Train one with: manage.py train --recipe RECIPE")
            return
        for version in versions:
            self.stdout.write(f"{version_summary(version)} [{version.solution.recipe}]")
            if version.status == "ACTIVE":
                self.stdout.write(metrics_table(version.metrics))
