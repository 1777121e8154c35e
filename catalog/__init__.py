"""The catalog: dataset groups, their items, end users, interactions and schemas."""
