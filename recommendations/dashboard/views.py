"""The dashboard's pages and actions, for staff only (mounted under /admin/dashboard/ by recsite.urls).

- `dashboard`: every panel for one dataset group (`?group=NAME&days=N`), charts from `charts`.
- `solution_train` (POST): a new version of a solution, trained where the solution lives.
- `campaign_deploy` (POST): a campaign serves another ACTIVE version of its solution.
- `filter_create_page`: a form that creates a filter; `filter_check` (POST, JSON) validates the
  expression as the operator types, answering the parser's position and expected tokens.

Views only parse input and call selectors and services; each checks the model permission its
action needs, on top of the admin's staff login.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from catalog.models import DEFAULT_DATASET_GROUP, DatasetGroup
from recommendations import services
from recommendations.dashboard import charts, selectors
from recommendations.errors import FilterError, FilterSyntaxError, RecommendationError
from recommendations.filtering import filter_create, filter_expression_check
from recommendations.models import NAME_VALIDATOR, Campaign, Solution, SolutionVersion, SolutionVersionStatus

__all__ = [
    "FilterCreateForm",
    "campaign_deploy",
    "dashboard",
    "filter_check",
    "filter_create_page",
    "solution_train",
]

MAX_GROUPS_LISTED = 100
_POSITION = re.compile(r"^position (\d+)")


def _require(request: HttpRequest, *permissions: str) -> None:
    if not request.user.has_perms(permissions):
        raise PermissionDenied


def _group(request: HttpRequest) -> DatasetGroup:
    name = request.GET.get("group") or request.POST.get("group") or DEFAULT_DATASET_GROUP
    if name == DEFAULT_DATASET_GROUP:
        return DatasetGroup.objects.get_or_create(name=name)[0]
    return get_object_or_404(DatasetGroup, name=name)


def _days(request: HttpRequest) -> int:
    try:
        return min(max(int(request.GET.get("days", 7)), 1), selectors.MAX_DAYS)
    except ValueError:
        return 7


def _back(group: DatasetGroup, days: str | None = None) -> HttpResponseRedirect:
    query = {"group": group.name, **({"days": days} if days else {})}
    return HttpResponseRedirect(f"{reverse('recsite_dashboard:index')}?{urlencode(query)}")


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


def dashboard(request: HttpRequest) -> HttpResponse:
    """The dashboard of one dataset group: events, items, solutions, campaigns, outbox, failures."""
    _require(request, "recommendations.view_solution", "recommendations.view_campaign")
    started = time.perf_counter()
    group, days = _group(request), _days(request)
    window = selectors.dashboard_window(dataset_group=group, days=days)
    events = selectors.events_per_hour(dataset_group=group, window=window)
    top = selectors.top_items(dataset_group=group, window=window)
    trending = selectors.trending_items(dataset_group=group, window=window)
    solutions = selectors.solution_rows(dataset_group=group)
    campaigns = selectors.campaign_rows(dataset_group=group)
    deployable = {solution.pk: solution.active_versions for solution in solutions}
    context = _context(
        request,
        "Dashboard",
        group=group,
        groups=list(DatasetGroup.objects.order_by("name").values_list("name", flat=True)[:MAX_GROUPS_LISTED]),
        days=days,
        day_choices=(1, 3, 7, 14, 30),
        window=window,
        events=events,
        top=top,
        trending=trending,
        solutions=solutions,
        campaigns=[(campaign, deployable.get(campaign.solution_pk, [])) for campaign in campaigns],
        backlog=selectors.outbox_backlog(),
        failed=selectors.failed_jobs(),
        chart_events=charts.events_chart(events),
        chart_top=charts.top_items_chart(top, window.days),
        chart_trending=charts.trending_items_chart(trending),
        chart_metrics=charts.metrics_chart(solutions),
        metric_names=selectors.CHART_METRICS,
        can_train=request.user.has_perm("recommendations.change_solution"),
        can_deploy=request.user.has_perm("recommendations.change_campaign"),
        can_add_filter=request.user.has_perm("recommendations.add_filter"),
    )
    context["render_ms"] = round((time.perf_counter() - started) * 1000)
    return render(request, "recommendations/dashboard/index.html", context)


@require_POST
def solution_train(request: HttpRequest, pk: int) -> HttpResponse:
    """Train a new version of the solution (on Personalize when the solution was created there)."""
    _require(request, "recommendations.change_solution")
    solution = get_object_or_404(Solution.objects.select_related("dataset_group"), pk=pk)
    try:
        with transaction.atomic():
            if solution.personalize_arn:
                from recommendations.personalize_jobs import personalize_solution_version_create

                version = personalize_solution_version_create(solution=solution)
            else:
                version = services.solution_version_create(solution=solution)
    except RecommendationError as error:
        messages.error(request, f"Solution {solution.name}: {error}")
    else:
        version.refresh_from_db(fields=["status", "failure_reason"])
        status = version.status if version.is_finished else "training"
        text = f"Solution {solution.name}: version {version.pk} is {status}."
        if version.failure_reason:
            text += f" {version.failure_reason}"
        level = messages.ERROR if version.status == SolutionVersionStatus.FAILED else messages.SUCCESS
        messages.add_message(request, level, text)
    return _back(solution.dataset_group, request.POST.get("days"))


@require_POST
def campaign_deploy(request: HttpRequest, pk: int) -> HttpResponse:
    """Deploy the posted ACTIVE version (of the campaign's solution) to the campaign."""
    _require(request, "recommendations.change_campaign")
    campaign = get_object_or_404(
        Campaign.objects.select_related("dataset_group", "solution_version__solution"), pk=pk
    )
    version = SolutionVersion.objects.filter(
        pk=request.POST.get("version") or 0, solution_id=campaign.solution_version.solution_id
    ).first()
    if version is None:
        messages.error(
            request, f"Campaign {campaign.name}: choose a version of {campaign.solution_version.solution}."
        )
    elif version.pk == campaign.solution_version_id:
        messages.info(request, f"Campaign {campaign.name}: already serves version {version.pk}.")
    else:
        try:
            with transaction.atomic():
                campaign = services.campaign_update(campaign=campaign, solution_version=version)
        except RecommendationError as error:
            messages.error(request, f"Campaign {campaign.name}: {error}")
        else:
            if campaign.solution_version_id == version.pk:
                messages.success(request, f"Campaign {campaign.name}: now serves version {version.pk}.")
            else:  # a campaign on Personalize moves once Personalize has finished the update
                messages.success(
                    request, f"Campaign {campaign.name}: update to version {version.pk} started."
                )
    return _back(campaign.dataset_group, request.POST.get("days"))


class FilterCreateForm(forms.Form):
    """A new filter: group, name and expression (checked again by `filter_create` when saved)."""

    dataset_group = forms.ModelChoiceField(queryset=DatasetGroup.objects.order_by("name"), empty_label=None)
    name = forms.CharField(max_length=63, validators=[NAME_VALIDATOR])
    expression = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 90, "spellcheck": "false", "autocomplete": "off"}),
        help_text="Amazon Personalize's filter language, e.g. "
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
    )


def filter_create_page(request: HttpRequest) -> HttpResponse:
    """Create a filter; the expression is validated as it is typed (filter_check) and when saved."""
    _require(request, "recommendations.add_filter")
    form = FilterCreateForm(request.POST or None, initial={"dataset_group": _group(request)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                created = filter_create(
                    dataset_group=data["dataset_group"], name=data["name"], expression=data["expression"]
                )
        except FilterError as error:
            field = "name" if "already exists" in str(error) else "expression"
            form.add_error(field, str(error))
        else:
            messages.success(request, f"Filter {created.name} created ({created.status}).")
            return _back(created.dataset_group)
    return render(
        request,
        "recommendations/dashboard/filter_form.html",
        _context(request, "Create a filter", form=form),
    )


def _check_answer(group: DatasetGroup, expression: str) -> dict[str, Any]:
    try:
        parsed = filter_expression_check(dataset_group=group, expression=expression)
    except FilterSyntaxError as error:
        return {
            "valid": False,
            "message": str(error),
            "position": error.position,
            "line": error.line,
            "column": error.column,
            "expected": list(error.expected),
        }
    except FilterError as error:
        match = _POSITION.match(str(error))
        position = int(match.group(1)) if match else None
        line = column = None
        if position is not None:
            before = expression[: position - 1]
            line = before.count("\n") + 1
            column = position - before.rfind("\n") - 1
        return {
            "valid": False,
            "message": str(error),
            "position": position,
            "line": line,
            "column": column,
            "expected": [],
        }
    return {
        "valid": True,
        "message": f"Valid: filters {parsed.target}"
        + (f"; values to pass: {', '.join(parsed.placeholders)}" if parsed.placeholders else ""),
        "target": str(parsed.target),
        "placeholders": list(parsed.placeholders),
    }


@never_cache
@csrf_protect
@require_POST
def filter_check(request: HttpRequest) -> JsonResponse:
    """Validate `{"datasetGroup": id, "expression": text}`; staff only (403 JSON otherwise)."""
    user = request.user
    if not (user.is_active and user.is_staff and user.has_perm("recommendations.add_filter")):
        return JsonResponse({"error": "staff with the add filter permission only"}, status=403)
    try:
        body = json.loads(request.body)
        expression = body["expression"]
        group = DatasetGroup.objects.filter(pk=int(body["datasetGroup"])).first()
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": 'send {"datasetGroup": id, "expression": text}'}, status=400)
    if not isinstance(expression, str):
        return JsonResponse({"error": "expression must be text"}, status=400)
    if group is None:
        return JsonResponse({"error": "no such dataset group"}, status=400)
    return JsonResponse(_check_answer(group, expression))
