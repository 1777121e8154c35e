"""Domain errors of the recommendations app; each message can be shown to the caller as it is."""

from django.core.exceptions import ObjectDoesNotExist

__all__ = [
    "CampaignNotFoundError",
    "EventTrackerExistsError",
    "EventTrackerNotFoundError",
    "RecommendationError",
    "SolutionConfigError",
    "SolutionNotFoundError",
    "TrackingInputError",
]


class RecommendationError(ValueError):
    """Base class: a request or a resource the recommendations app refuses, with the reason."""


class SolutionConfigError(RecommendationError):
    """A solution or campaign configuration that names an unknown key or a bad value."""


class SolutionNotFoundError(RecommendationError):
    """The named solution does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"solution {name!r} does not exist")
        self.name = name


class CampaignNotFoundError(RecommendationError):
    """The named campaign does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"campaign {name!r} does not exist")
        self.name = name


class EventTrackerExistsError(RecommendationError):
    """CreateEventTracker refused: the group already has its one tracker, or the name is taken."""


class EventTrackerNotFoundError(RecommendationError, ObjectDoesNotExist):
    """No event tracker has this tracking id (NOT_FOUND; also an ObjectDoesNotExist)."""

    def __init__(self, tracking_id: str) -> None:
        shown = tracking_id if len(tracking_id) <= 80 else tracking_id[:80] + "..."
        super().__init__(f"no event tracker has trackingId {shown!r}")
        self.tracking_id = tracking_id


class TrackingInputError(RecommendationError):
    """A putEvents / putItems / putUsers argument refused; `field` is its path, e.g. `events[3].sentAt`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
