"""accounts.revocation: which changes bump the auth generation, and when a cached entry stops counting."""
import time

import pytest
from django.db import transaction

from accounts import revocation, services

pytestmark = pytest.mark.django_db(transaction=True)


def _generation() -> int:
    return int(revocation.generation_get())


def test_a_saved_key_bumps_after_commit_and_a_rolled_back_one_does_not(member_user):
    key, _raw = services.api_key_create(owner=member_user, name="k")
    before = _generation()
    with pytest.raises(RuntimeError), transaction.atomic():
        key.scopes = ["x"]
        key.save()
        raise RuntimeError("roll back")
    assert _generation() == before
    with transaction.atomic():
        key.save()
        assert _generation() == before  # not before the row is visible to other processes
    assert _generation() == before + 1


def test_logins_and_key_touches_do_not_bump(member_user):
    key, _raw = services.api_key_create(owner=member_user, name="k")
    before = _generation()
    member_user.save(update_fields=["last_login"])
    key.save(update_fields=["last_used_at"])
    assert _generation() == before
    member_user.delete()  # the user and, by cascade, the key
    assert _generation() > before


def test_an_entry_counts_only_under_its_generation_and_within_its_lifetime():
    cache = revocation.PrincipalCache(ttl=0.2)
    cache.put("digest", "principal", generation="7")
    assert cache.get("digest", generation="7") == "principal"
    assert cache.get("digest") == "principal"
    assert cache.get("digest", generation="8") is None
    assert cache.get("digest") is None  # a stale entry is dropped, not kept for later
    cache.put("digest", "principal", generation="8")
    time.sleep(0.25)
    assert cache.get("digest", generation="8") is None
