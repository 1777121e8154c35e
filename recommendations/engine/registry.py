"""Recipes by their Personalize name."""

from recommendations.engine.base import Recipe, RecipeError

__all__ = ["RECIPES", "recipe_class", "register"]

RECIPES: dict[str, type[Recipe]] = {}


def register(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator: make a recipe available under its `name`."""
    RECIPES[cls.name] = cls
    return cls


def recipe_class(name: str) -> type[Recipe]:
    """The recipe class for a Personalize recipe name such as `aws-sims`."""
    try:
        return RECIPES[name]
    except KeyError:
        known = ", ".join(sorted(RECIPES)) or "none"
        raise RecipeError(f"unknown recipe {name!r} (known: {known})") from None
