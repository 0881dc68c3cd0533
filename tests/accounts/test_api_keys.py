from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey, AuditEvent
from sparkportal.exceptions import AuthenticationFailed, ValidationFailed

pytestmark = pytest.mark.django_db


def test_it_stores_only_a_hash_and_shows_the_secret_once(member_user):
    key, raw = services.api_key_create(owner=member_user, name="laptop")
    assert raw.startswith("sk-sp-") and len(raw) > 40
    stored = ApiKey.objects.get(pk=key.pk)
    assert raw not in {stored.hashed_key, stored.prefix, stored.name}
    assert stored.hashed_key == services.hash_key(raw)
    assert raw.startswith(stored.prefix)
    assert AuditEvent.objects.filter(action="accounts.apikey.created", target_id=str(key.pk)).exists()


def test_it_authenticates_and_touches_last_used(member_user):
    key, raw = services.api_key_create(owner=member_user, name="ci")
    found = services.api_key_authenticate(raw=raw)
    assert found.pk == key.pk
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None


def test_it_rejects_a_revoked_key_with_the_reason(member_user):
    key, raw = services.api_key_create(owner=member_user, name="old")
    services.api_key_revoke(key=key, actor=member_user)
    with pytest.raises(AuthenticationFailed, match="was revoked"):
        services.api_key_authenticate(raw=raw)
    assert AuditEvent.objects.filter(action="accounts.apikey.revoked").count() == 1


def test_it_rejects_an_expired_key(member_user):
    key, raw = services.api_key_create(owner=member_user, name="short",
                                       expires_at=timezone.now() + timedelta(seconds=1))
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(AuthenticationFailed, match="expired on"):
        services.api_key_authenticate(raw=raw)


def test_it_rejects_malformed_and_unknown_keys():
    with pytest.raises(AuthenticationFailed, match="Malformed API key"):
        services.api_key_authenticate(raw="hello")
    with pytest.raises(AuthenticationFailed, match="Unknown API key"):
        services.api_key_authenticate(raw="sk-sp-" + "x" * 40)


def test_it_refuses_bad_input_with_what_to_fix(member_user):
    with pytest.raises(ValidationFailed, match="Give the key a name"):
        services.api_key_create(owner=member_user, name="  ")
    with pytest.raises(ValidationFailed, match="in the past"):
        services.api_key_create(owner=member_user, name="x", expires_at=timezone.now() - timedelta(days=1))
    services.api_key_create(owner=member_user, name="dup")
    with pytest.raises(ValidationFailed, match="already have an active key named 'dup'"):
        services.api_key_create(owner=member_user, name="dup")


def test_revoke_by_prefix_or_full_key(member_user):
    key1, raw1 = services.api_key_create(owner=member_user, name="a")
    key2, _raw2 = services.api_key_create(owner=member_user, name="b")
    assert services.api_key_find(key_or_prefix=raw1).pk == key1.pk
    assert services.api_key_find(key_or_prefix=key2.display).pk == key2.pk
    with pytest.raises(ValidationFailed, match="start with 'sk-sp-'"):
        services.api_key_find(key_or_prefix="abc")
