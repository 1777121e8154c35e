"""The catalog's GraphQL API: types, filters, orderings and the Query fields."""

__all__: list[str] = []
