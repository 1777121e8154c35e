"""Domain errors of the recommendations app; each message can be shown to the caller as it is."""

__all__ = [
    "CampaignNotFoundError",
    "RecommendationError",
    "SolutionConfigError",
    "SolutionNotFoundError",
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
