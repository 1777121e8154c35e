"""Recommendation backends: the local engine and Amazon Personalize (adapter in `aws`)."""

__all__: list[str] = []
