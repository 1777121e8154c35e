"""GraphQL schema of the recommendations app: the recommendation queries and lifecycle mutations."""
