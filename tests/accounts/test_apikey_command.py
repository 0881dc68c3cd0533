from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts import services
from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("apikey", *args, stdout=out)
    return out.getvalue()


def test_create_prints_the_key_alone_on_the_last_line(member_user):
    output = run("create", "mia", "--name", "laptop")
    raw = output.strip().splitlines()[-1]
    assert raw.startswith("sk-sp-") and " " not in raw
    assert services.api_key_authenticate(raw=raw).owner == member_user


def test_revoke_by_full_key_and_by_prefix(member_user):
    raw1 = run("create", "mia", "--name", "a").strip().splitlines()[-1]
    raw2 = run("create", "mia", "--name", "b").strip().splitlines()[-1]
    assert "Revoked key" in run("revoke", raw1)
    key2 = ApiKey.objects.get(name="b")
    assert "Revoked key" in run("revoke", key2.display)
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 0
    assert "already revoked" in run("revoke", raw2)


def test_bad_input_says_what_to_fix(member_user):
    with pytest.raises(CommandError, match="No user 'nobody'"):
        run("create", "nobody", "--name", "x")
    with pytest.raises(CommandError, match="is not a date"):
        run("create", "mia", "--name", "x", "--expires", "tomorrow")
    with pytest.raises(CommandError, match="No API key matches"):
        run("revoke", "sk-sp-ZZZZZZZZ")
