"""The Servers list and detail pages: clearing stopped and failed servers (the row, its history and the audit
stay), and what an external server offers."""
import pytest
from django.test import Client

from accounts.models import AuditEvent
from servers.models import Server

pytestmark = pytest.mark.django_db


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_failed_server_is_cleared_from_the_list_and_kept_in_history(node, operator_user):
    failed = Server.objects.create(node=node, served_model_name="broken", port=8101, status="failed")
    ready = Server.objects.create(node=node, served_model_name="fine", port=8102, status="ready")
    client = _login(operator_user)
    assert f'data-server="{failed.pk}"' in client.get("/servers/").content.decode()
    client.post(f"/servers/{failed.pk}/clear/", {"next": "/servers/"})
    page = client.get("/servers/").content.decode()
    assert f'data-server="{failed.pk}"' not in page and f'data-server="{ready.pk}"' in page
    failed.refresh_from_db()
    assert failed.cleared_at is not None and failed.status == "failed"
    assert "cleared from the list by oscar" in client.get(f"/servers/{failed.pk}/").content.decode()
    assert AuditEvent.objects.filter(action="servers.server.cleared").count() == 1


def test_only_stopped_or_failed_servers_are_cleared_and_only_by_operators(node, operator_user, member_user):
    ready = Server.objects.create(node=node, served_model_name="fine", port=8102, status="ready")
    stopped = Server.objects.create(node=node, served_model_name="old", port=8103, status="stopped")
    refused = _login(operator_user).post(f"/api/servers/{ready.pk}/clear")
    assert refused.status_code == 409
    assert refused.json()["detail"] == f"Server #{ready.pk} is ready: only a stopped or failed server can be cleared."
    assert _login(member_user).post(f"/api/servers/{stopped.pk}/clear").status_code == 403
    assert _login(operator_user).post(f"/api/servers/{stopped.pk}/clear").json()["cleared_at"]


def test_an_external_servers_page_offers_no_log_file_to_download(node, operator_user):
    external = Server.objects.create(node=node, served_model_name="theirs", port=8104, status="external", pid=4242)
    page = _login(operator_user).get(f"/servers/{external.pk}/").content.decode()
    assert "download the whole file" not in page
    assert "no log file: the portal did not start this engine (pid 4242)" in page
