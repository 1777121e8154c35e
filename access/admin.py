"""Admin for API keys: create (the secret is shown once, in a message), change name and scopes, revoke."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from access.models import SCOPE_DESCRIPTIONS, SCOPES, ApiKey
from access.services import ApiKeyError, api_key_create, api_key_revoke, parse_scopes

__all__ = ["ApiKeyAdmin", "ApiKeyForm"]


class ApiKeyForm(forms.ModelForm):
    """Name and scopes as checkboxes."""

    scopes = forms.MultipleChoiceField(
        choices=[(scope, SCOPE_DESCRIPTIONS[scope]) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = ApiKey
        fields = ("name", "scopes")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and isinstance(self.initial.get("scopes"), str):
            self.initial["scopes"] = self.initial["scopes"].split(",")

    def clean_scopes(self) -> str:
        """The checked scopes as the stored comma-separated text."""
        try:
            return ",".join(parse_scopes(self.cleaned_data["scopes"]))
        except ApiKeyError as error:
            raise forms.ValidationError(str(error)) from error


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """API keys; the secret exists only in the message shown after creating one."""

    form = ApiKeyForm
    list_display = ("name", "key_id", "scopes", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "key_id")
    readonly_fields = ("key_id", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        """Create new keys through the service (which makes the secret) and show the secret once."""
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = api_key_create(name=obj.name, scopes=obj.scopes)
        obj.pk = issued.api_key.pk
        obj.refresh_from_db()
        obj._state.adding = False
        messages.warning(
            request,
            f"Copy the key now; it is not stored and will not be shown again. "
            f"Bearer token: {issued.token} — for boto3 (SigV4): aws_access_key_id={obj.key_id} "
            f"aws_secret_access_key={issued.secret}",
        )

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        """Revoke keys at once."""
        for api_key in queryset:
            api_key_revoke(key_id=api_key.key_id)
        self.message_user(request, f"Revoked {queryset.count()} API key(s).", messages.SUCCESS)
