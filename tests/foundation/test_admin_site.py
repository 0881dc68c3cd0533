"""The admin site: plural names read right, and beat's raw schedule tables are for superusers only."""
import re

import pytest
from django.contrib import admin
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_model_names_have_proper_plurals():
    plurals = {str(model._meta.verbose_name_plural) for model in admin.site._registry}
    assert "benchmark summaries" in plurals
    assert not [p for p in plurals if re.search(r"[^aeiou]ys$", p)]  # "summarys", not "keys"


def test_celery_tables_are_hidden_from_staff_who_are_not_superusers(admin_user):
    staff = UserFactory(username="ada", role="admin", is_staff=True, is_superuser=False)
    client = Client()
    client.force_login(staff)
    assert "Periodic tasks" not in client.get("/admin/").content.decode()
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 403
    client.force_login(admin_user)
    assert "Periodic tasks" in client.get("/admin/").content.decode()
