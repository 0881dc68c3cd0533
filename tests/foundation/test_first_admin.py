from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_first_admin_is_created_once(monkeypatch):
    monkeypatch.delenv("PORTAL_ADMIN_PASSWORD", raising=False)
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert "password '" in out.getvalue()
    password = out.getvalue().split("password '")[1].split("'")[0]
    assert "manage.py changepassword admin" in out.getvalue()
    assert out.getvalue().strip().startswith("=====") and out.getvalue().strip().endswith("=====")
    admin = User.objects.get(username="admin")
    assert admin.role == "admin" and admin.is_superuser and admin.check_password(password)
    out2 = StringIO()
    call_command("ensure_admin", stdout=out2)
    assert "exists" in out2.getvalue() and User.objects.count() == 1


def test_first_admin_password_from_environment(monkeypatch):
    monkeypatch.setenv("PORTAL_ADMIN_PASSWORD", "from-the-env-123")
    call_command("ensure_admin", stdout=StringIO())
    assert User.objects.get(username="admin").check_password("from-the-env-123")
