"""API keys: made by the service, command or admin, shown once, stored hashed and encrypted, revocable."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from access.authentication import InvalidCredentialsError, api_key_authenticate
from access.crypto import SecretUnreadableError, decrypt_secret, hash_secret
from access.models import ApiKey
from access.services import ApiKeyError, api_key_create, api_key_revoke
from tests.auth import wrong_secret

pytestmark = pytest.mark.django_db


def test_a_created_key_stores_no_clear_secret() -> None:
    # When a key is created
    issued = api_key_create(name="shop-backend", scopes="recommend,track")
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    # Then the token is `<key id>.<secret>`, and neither the hash nor the encrypted form holds the secret
    assert issued.token == f"{stored.key_id}.{issued.secret}"
    assert re.fullmatch(r"RSK[A-Z2-7]{17}", stored.key_id)
    assert len(issued.secret) == 40
    assert issued.secret not in stored.secret_hash and issued.secret not in stored.secret_encrypted
    assert stored.secret_hash == hash_secret(issued.secret)
    # and the encrypted form gives the secret back (for SigV4), under this SECRET_KEY only
    assert decrypt_secret(stored.secret_encrypted) == issued.secret
    assert stored.scopes == "recommend,track"


def test_the_secret_cannot_be_read_under_another_secret_key_but_can_with_it_as_a_fallback(
    settings: Any,
) -> None:
    # Given a key encrypted under the current SECRET_KEY
    issued = api_key_create(name="k", scopes="manage")
    old_key = settings.SECRET_KEY
    # When the secret key changes, then the secret is unreadable
    settings.SECRET_KEY = "a-completely-different-secret-key"
    with pytest.raises(SecretUnreadableError):
        decrypt_secret(issued.api_key.secret_encrypted)
    # and with the old key kept as a fallback (Django's rotation), it is readable again
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert decrypt_secret(issued.api_key.secret_encrypted) == issued.secret


def test_authentication_checks_the_secret_and_revocation() -> None:
    # Given a key
    issued = api_key_create(name="k", scopes="track")
    # Then its token authenticates with its scopes, and manage expands to every scope
    assert api_key_authenticate(token=issued.token).scopes == {"track"}
    assert api_key_authenticate(token=api_key_create(name="m", scopes="manage").token).scopes == {
        "recommend",
        "track",
        "manage",
    }
    # and a wrong secret (its last character changed) does not
    with pytest.raises(InvalidCredentialsError):
        api_key_authenticate(token=f"{issued.api_key.key_id}.{wrong_secret(issued.secret)}")
    # and once revoked, the right secret does not either
    api_key_revoke(key_id=issued.api_key.key_id)
    with pytest.raises(InvalidCredentialsError, match="revoked"):
        api_key_authenticate(token=issued.token)


def test_use_is_recorded_at_most_once_per_interval(settings: Any) -> None:
    # Given a new key, never used
    issued = api_key_create(name="k", scopes="recommend")
    assert issued.api_key.last_used_at is None
    # When it is used, then last_used_at is set
    api_key_authenticate(token=issued.token)
    first = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    assert first is not None
    # and using it again within the interval writes nothing
    api_key_authenticate(token=issued.token)
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == first


@pytest.mark.parametrize(
    ("scopes", "message"), [("read", "unknown scope"), ("", "at least one scope"), (" , ", "at least one")]
)
def test_bad_scopes_are_refused(scopes: str, message: str) -> None:
    with pytest.raises(ApiKeyError, match=message):
        api_key_create(name="k", scopes=scopes)


def test_the_command_prints_the_key_once_and_it_works() -> None:
    # When the command creates a key
    out = io.StringIO()
    call_command("create_api_key", "--scopes", "recommend,track,manage", "--name", "server", stdout=out)
    text = out.getvalue()
    # Then it prints the Bearer token and the SigV4 pair, and the token authenticates
    token = re.search(r"Authorization: Bearer (\S+)", text).group(1)  # type: ignore[union-attr]
    key = ApiKey.objects.get(name="server")
    assert token.startswith(key.key_id + ".") and f"aws_access_key_id={key.key_id}" in text
    assert api_key_authenticate(token=token).scopes == {"recommend", "track", "manage"}
    assert key.scopes == "manage,recommend,track"


def test_the_commands_refuse_bad_input_clearly() -> None:
    with pytest.raises(CommandError, match="unknown scope"):
        call_command("create_api_key", "--scopes", "admin", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no API key"):
        call_command("revoke_api_key", "RSKNOSUCHKEY", stdout=io.StringIO())


def test_the_revoke_command_refuses_the_key_from_then_on() -> None:
    issued = api_key_create(name="k", scopes="manage")
    out = io.StringIO()
    call_command("revoke_api_key", issued.api_key.key_id, stdout=out)
    assert "Revoked" in out.getvalue()
    with pytest.raises(InvalidCredentialsError):
        api_key_authenticate(token=issued.token)


@pytest.fixture
def admin_client_logged_in() -> Client:
    user = get_user_model().objects.create_superuser(username="admin", password="pw", email="a@example.com")
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_creates_a_key_and_shows_the_secret_once(admin_client_logged_in: Client) -> None:
    # When an operator adds a key in the admin
    response = admin_client_logged_in.post(
        "/admin/access/apikey/add/",
        {"name": "frontend-server", "scopes": ["recommend", "track"]},
        follow=True,
    )
    # Then the page shows the token once, and it authenticates
    assert response.status_code == 200
    page = response.content.decode()
    token = re.search(r"Bearer token: (RSK[A-Z2-7]{17}\.[\w-]{40})", page).group(1)  # type: ignore[union-attr]
    assert api_key_authenticate(token=token).scopes == {"recommend", "track"}
    # and the key's page does not show it again
    key = ApiKey.objects.get(name="frontend-server")
    change = admin_client_logged_in.get(f"/admin/access/apikey/{key.pk}/change/").content.decode()
    assert token.split(".")[1] not in change and key.key_id in change


def test_the_admin_revokes_keys(admin_client_logged_in: Client) -> None:
    issued = api_key_create(name="k", scopes="manage")
    response = admin_client_logged_in.post(
        "/admin/access/apikey/",
        {"action": "revoke", "_selected_action": [issued.api_key.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is not None
    with pytest.raises(InvalidCredentialsError):
        api_key_authenticate(token=issued.token)


def test_the_admin_refuses_a_key_without_scopes(admin_client_logged_in: Client) -> None:
    response = admin_client_logged_in.post("/admin/access/apikey/add/", {"name": "x", "scopes": []})
    assert response.status_code == 200 and not ApiKey.objects.exists()
