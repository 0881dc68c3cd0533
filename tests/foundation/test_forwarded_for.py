"""X-Forwarded-For is believed only from PORTAL_TRUSTED_PROXIES (through daphne; the tests' own address,
127.0.0.1, plays the proxy when it is trusted)."""
import time

import httpx
import pytest

from accounts import services
from accounts.models import AuditEvent
from gateway.models import UsageRecord
from tests.conftest import start_daphne, stop_process, subprocess_env


@pytest.fixture
def portal(request, transactional_db):
    server = start_daphne(subprocess_env(**request.param))
    yield server
    stop_process(server.proc)


def login(server, username: str, password: str, forwarded_for: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/accounts/login/")
        return client.post("/accounts/login/", headers={"X-Forwarded-For": forwarded_for},
                           data={"username": username, "password": password,
                                 "csrfmiddlewaretoken": client.cookies["csrftoken"]})


@pytest.mark.parametrize("portal", [{"PORTAL_HTTPS": "1", "PORTAL_SSL_REDIRECT": "0"}], indirect=True)
def test_without_trusted_proxies_a_forged_header_does_not_reach_the_audit(portal, member_user):
    _key, raw = services.api_key_create(owner=member_user, name="cli")
    response = httpx.post(f"{portal.url}/api/accounts/keys", json={"name": "laptop"},
                          headers={"X-API-Key": raw, "X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 201, response.text
    assert AuditEvent.objects.filter(actor=member_user).latest("created_at").ip == "127.0.0.1"


@pytest.mark.parametrize("portal", [{"PORTAL_TRUSTED_PROXIES": "127.0.0.1", "PORTAL_LOGIN_FAILURE_LIMIT": "3"}],
                         indirect=True)
def test_behind_a_proxy_one_attacker_cannot_lock_out_the_admin(portal, admin_user):
    # The attacker forges the admin's address on the left; the proxy appends the one it really saw.
    attacker = "203.0.113.5, 198.51.100.66"
    assert [login(portal, "alice", "wrong", attacker).status_code for _ in range(3)] == [200, 200, 429]
    assert login(portal, "alice", "pw-Secret-123", attacker).status_code == 429
    failed = AuditEvent.objects.filter(action="accounts.user.login_failed").latest("created_at")
    assert failed.ip == "198.51.100.66"
    response = login(portal, "alice", "pw-Secret-123", "203.0.113.5")
    assert response.status_code == 302 and response.headers["location"] == "/"


@pytest.mark.parametrize("portal", [{"PORTAL_TRUSTED_PROXIES": "127.0.0.0/8"}], indirect=True)
def test_the_gateway_ledger_records_the_address_the_proxy_saw(portal, member_user):
    _key, raw = services.api_key_create(owner=member_user, name="cli")
    response = httpx.post(f"{portal.url}/v1/chat/completions", json={"model": "no-such-model", "messages": []},
                          headers={"Authorization": f"Bearer {raw}", "X-Forwarded-For": "1.2.3.4, 198.51.100.7"})
    assert response.status_code == 404, response.text
    deadline = time.monotonic() + 10
    while not (rows := list(UsageRecord.objects.filter(user=member_user))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [row.client_ip for row in rows] == ["198.51.100.7"]


@pytest.mark.parametrize("peer, header, expected", [
    ("198.51.100.1", "203.0.113.5", "198.51.100.1"),                  # not a proxy: header ignored
    ("10.0.0.2", None, "10.0.0.2"),
    ("10.0.0.2", "203.0.113.5, 198.51.100.66", "198.51.100.66"),      # rightmost untrusted
    ("10.0.0.2", "198.51.100.66, 10.0.0.3", "198.51.100.66"),         # through two proxies
    ("10.0.0.2", "10.0.0.4, 10.0.0.3", "10.0.0.4"),                   # all proxies: the farthest
    ("10.0.0.2", "198.51.100.66, not-an-ip", "10.0.0.2"),             # garbage: the last vouched hop
    ("::1", "2001:db8::7", "2001:db8::7"),
])
def test_client_address_reads_forwarded_for_from_the_right(peer, header, expected):
    from sparkportal.lib.clientip import client_address, parse_networks

    trusted = parse_networks("PORTAL_TRUSTED_PROXIES", ["10.0.0.0/8", "::1"])
    assert client_address(peer, header, trusted) == expected


def test_a_bad_trusted_proxy_stops_start_up_with_a_message():
    from django.core.exceptions import ImproperlyConfigured

    from sparkportal.lib.clientip import parse_networks

    with pytest.raises(ImproperlyConfigured, match="CIDR"):
        parse_networks("PORTAL_TRUSTED_PROXIES", ["10.0.0.0/33"])
