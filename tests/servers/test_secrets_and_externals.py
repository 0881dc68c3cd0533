"""An engine the portal did not start: its secrets are hidden wherever it is shown, it says where it
really listens, and only an operator's adoption makes it routable (tests/gateway/test_external_engines.py)."""
import contextlib
import os
import signal
import subprocess
import time

import httpx
import pytest
from django.test import Client

from accounts.models import AuditEvent
from servers import reconcile, services
from servers.models import Server
from tests.conftest import free_port
from tests.servers.conftest import FAKE_VLLM

SECRET = "s3cr3t-engine-key"


@contextlib.contextmanager
def _stray(*args: str):
    port = free_port()
    proc = subprocess.Popen([FAKE_VLLM, "serve", "org/stray-model", "--port", str(port), "--served-model-name",
                             "stray", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("SPARKPORTAL_")})
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield proc, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _member_sees(client: Client, server: Server) -> str:
    pages = [client.get(f"/api/servers/{server.pk}"), client.get(f"/api/servers/{server.pk}/events"),
             client.get("/api/servers/"), client.get(f"/servers/{server.pk}/"), client.get("/servers/")]
    assert all(p.status_code == 200 for p in pages), [p.status_code for p in pages]
    return "".join(p.content.decode() for p in pages)


def test_a_found_engines_api_key_is_hidden_from_members_and_from_the_audit(celery_worker, node, member_user,
                                                                           operator_user):
    with _stray("--api-key", SECRET, f"--hf-token={SECRET}") as (proc, _port):
        reconcile.node_reconcile(node=node)
        external = Server.objects.get(node=node, pid=proc.pid)
        assert SECRET not in " ".join(external.argv) + external.status_reason
        assert "--api-key" in external.argv and "***" in external.argv
        client = Client()
        client.force_login(member_user)
        shown = _member_sees(client, external)
        assert SECRET not in shown and "--api-key" in shown
        services.server_adopt(user=operator_user, server=external)
        audit = AuditEvent.objects.get(action="servers.server.adopted")
        assert SECRET not in str(audit.details)


def test_failure_lines_and_old_rows_are_redacted_when_shown(node, member_user):
    server = Server.objects.create(node=node, served_model_name="old", port=free_port(), status=Server.Status.FAILED,
                                   argv=["vllm", "serve", "m", "--api-key", SECRET],
                                   status_reason=f"Engine failed: non-default args: {{'api_key': '{SECRET}'}}",
                                   last_log_lines=f"HF_TOKEN={SECRET} vllm serve m --api-key={SECRET}")
    client = Client()
    client.force_login(member_user)
    shown = _member_sees(client, server)
    assert SECRET not in shown and "api_key" in shown


def test_a_failure_reason_is_stored_without_the_secret(node):
    from servers import lifecycle

    server = Server.objects.create(node=node, served_model_name="m", port=free_port(), status=Server.Status.STARTING)
    lifecycle.transition(server.pk, to=Server.Status.FAILED, reason=f"exited: --api-key {SECRET} was refused",
                         last_log_lines=f"Authorization: Bearer {SECRET}")
    server.refresh_from_db()
    assert SECRET not in server.status_reason + server.last_log_lines + server.events.get().reason


def test_an_external_engine_records_the_address_it_is_reached_at_not_a_fixed_loopback(celery_worker, node,
                                                                                       settings):
    settings.PORTAL_ENGINE_HOST = "10.20.30.40"  # this node's engines are reached at its own address
    with _stray() as (proc, _port):
        reconcile.node_reconcile(node=node)
        assert Server.objects.get(node=node, pid=proc.pid).host == "10.20.30.40"


def test_a_loopback_only_engine_on_another_node_cannot_be_adopted(db, node, operator_user):
    from nodes.models import Node

    remote = Node.objects.create(name="far-away", queue="node.far-away")
    server = Server.objects.create(node=remote, served_model_name="stray", port=8000, host="127.0.0.1",
                                   status=Server.Status.EXTERNAL)
    with pytest.raises(Exception, match="gateway cannot reach") as refused:
        services.server_adopt(user=operator_user, server=server)
    assert refused.value.status == 400 and "--host" in refused.value.message
    server.refresh_from_db()
    assert server.status == "external"


@pytest.mark.parametrize(("argv", "host"), [
    (["vllm", "serve", "m", "--host", "10.0.0.7"], "10.0.0.7"),
    (["vllm", "serve", "m", "--host=0.0.0.0"], "engines.example"),
    (["vllm", "serve", "m"], "engines.example"),
])
def test_external_host_follows_the_engines_bind_address(settings, argv, host):
    settings.PORTAL_ENGINE_HOST = "engines.example"
    assert reconcile.external_host(argv) == host


def test_a_started_servers_stored_argv_has_no_secret(node, make_profile, operator_user):
    profile = make_profile(extra_flags=f"--api-key {SECRET}")
    server = services.server_start(user=operator_user, profile=profile, node=node)
    server.refresh_from_db()
    assert "--api-key" in server.argv and SECRET not in " ".join(server.argv)
