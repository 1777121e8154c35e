"""App configuration for access: API keys and who a request is.

Why an app of its own rather than `recsite/`: API keys are a model (migrations, admin), and two
callers need them: `recsite` (the GraphQL view and its permission extension) and
`recommendations.compat` (SigV4 requests from boto3). `recommendations` may not import `recsite`
(DESIGN §2: `recsite` → apps, never back), so keys and authentication live in this leaf app,
which imports no other app of ours. *Which operation needs which scope* is GraphQL's business
and is declared once in `recsite/graphql_access.py`.
"""

from django.apps import AppConfig

__all__ = ["AccessConfig"]


class AccessConfig(AppConfig):
    """API keys with scopes, request authentication, rate limits and signed user tokens."""

    name = "access"
    verbose_name = "Access"
    default_auto_field = "django.db.models.BigAutoField"
