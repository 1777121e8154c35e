"""Domain errors of the recommendations app; each message can be shown to the caller as it is."""

from django.core.exceptions import ObjectDoesNotExist

__all__ = [
    "BackendUnavailableError",
    "CampaignNotFoundError",
    "EventTrackerExistsError",
    "EventTrackerNotFoundError",
    "FilterError",
    "FilterNotFoundError",
    "FilterSyntaxError",
    "ModelUnavailableError",
    "PersonalizeAlreadyExistsError",
    "PersonalizeConfigError",
    "PersonalizeError",
    "PersonalizeInvalidInputError",
    "PersonalizeLimitExceededError",
    "PersonalizeNotFoundError",
    "PersonalizeRetryableError",
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


class BackendUnavailableError(RecommendationError):
    """The campaign's backend cannot answer this request: not supported there, or not deployed there yet."""


class ModelUnavailableError(BackendUnavailableError):
    """A local campaign's model artifact cannot be loaded, and no earlier version of it can either."""


class FilterError(RecommendationError):
    """A filter expression, filter name or filter value that Personalize would refuse."""


class FilterSyntaxError(FilterError):
    """Filter expression text that does not parse: where (1-based) and what was expected there."""

    def __init__(
        self, message: str, *, position: int, line: int, column: int, expected: tuple[str, ...] = ()
    ) -> None:
        super().__init__(f"position {position} (line {line}, column {column}): {message}")
        self.position = position
        self.line = line
        self.column = column
        self.expected = expected


class FilterNotFoundError(RecommendationError):
    """The named filter does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"filter {name!r} does not exist")
        self.name = name


class PersonalizeError(Exception):
    """An Amazon Personalize (or S3) call that failed: the AWS error code, its message and the operation."""

    retryable: bool = False

    def __init__(
        self, message: str, *, code: str = "", operation: str = "", http_status: int | None = None
    ) -> None:
        shown = f"{operation} failed: " if operation else ""
        shown += f"{code}: {message}" if code else message
        super().__init__(shown)
        self.code = code
        self.aws_message = message
        self.operation = operation
        self.http_status = http_status


class PersonalizeConfigError(PersonalizeError):
    """The Personalize backend is not configured: `setting` names what is missing or wrong."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}", code="ImproperlyConfigured")
        self.setting = setting


class PersonalizeRetryableError(PersonalizeError):
    """A transient failure (throttling, 5xx, timeout, no connection): the same call may succeed later."""

    retryable = True


class PersonalizeNotFoundError(PersonalizeError):
    """AWS says the resource (ARN, name) does not exist (ResourceNotFoundException)."""


class PersonalizeInvalidInputError(PersonalizeError):
    """AWS (or the client's model check) refused the request's parameters."""


class PersonalizeLimitExceededError(PersonalizeError):
    """An account quota is used up (LimitExceededException); retrying will not help."""


class PersonalizeAlreadyExistsError(PersonalizeError):
    """A resource with this name already exists (ResourceAlreadyExistsException)."""
