"""API keys, request authentication, rate limits and signed user tokens (see apps.py for why an app)."""
