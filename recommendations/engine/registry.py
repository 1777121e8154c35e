"""Recipes by their Personalize name."""

import importlib
import pkgutil

from recommendations.engine.base import Recipe, RecipeError

__all__ = ["RECIPES", "recipe_class", "register"]

RECIPES: dict[str, type[Recipe]] = {}


def register(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator: make a recipe available under its `name`."""
    RECIPES[cls.name] = cls
    return cls


def _import_all_recipes() -> None:
    """Import every engine module, so each recipe has registered itself."""
    import recommendations.engine

    for module in pkgutil.iter_modules(recommendations.engine.__path__):
        importlib.import_module(f"recommendations.engine.{module.name}")


def recipe_class(name: str) -> type[Recipe]:
    """The recipe class for a Personalize recipe name such as `aws-sims`."""
    if name not in RECIPES:
        _import_all_recipes()
    try:
        return RECIPES[name]
    except KeyError:
        known = ", ".join(sorted(RECIPES)) or "none"
        raise RecipeError(f"unknown recipe {name!r} (known: {known})") from None
