"""Failures in plain words with the fix. The service runs here directly (a unit test of the task body)."""
import hashlib

from models_registry import services
from models_registry.models import Download
from tests.models_registry.conftest import GATED, GATED_TOKEN, HUGE, MB, PRIVATE, SLOW, TINY


def run(node, repo_id, revision="main"):
    download, _ = services.download_request(actor=None, node=node, repo_id=repo_id, revision=revision)
    services.download_run(download_id=download.pk)
    return Download.objects.get(pk=download.pk)


def test_a_gated_repo_says_accept_the_licence_and_set_the_token(hub, node):
    d = run(node, GATED)
    assert d.status == "failed" and d.error_code == "gated"
    assert d.error.startswith(f"{GATED} is a gated repo: accept its licence on {hub.url}/{GATED}")
    assert "set that token for the node" in d.error


def test_the_node_token_opens_a_gated_repo_and_is_sent_as_bearer(hub, node, admin_user):
    services.hub_token_set(node=node, token=GATED_TOKEN, actor=admin_user)
    d = run(node, GATED)
    assert d.status == "done", d.error
    auth = {h.get("authorization") for m, p, h in hub.requests if "/resolve/" in p}
    assert auth == {f"Bearer {GATED_TOKEN}"}


def test_a_private_repo_without_access_is_a_401_with_the_fix(hub, node):
    d = run(node, PRIVATE)
    assert d.error_code == "unauthorized"
    assert d.error == (f"The hub refused access to {PRIVATE} (401): it is private or gated, or the node's token is "
                       "wrong. Accept the licence / ask for access on the hub, then set a valid token for this node "
                       "and resume.")


def test_a_missing_repo_is_a_404(hub, node):
    d = run(node, "acme/no-such-model")
    assert (d.status, d.error_code) == ("failed", "not_found")
    assert d.error == f"No repo acme/no-such-model on {hub.url} (404): check the spelling of owner/name."


def test_a_missing_revision_is_named(hub, node):
    d = run(node, TINY, revision="v9")
    assert d.error_code == "revision_not_found"
    assert d.error == f"{TINY} has no revision 'v9': check the branch, tag or commit in the profile (usually 'main')."


def test_a_full_disk_is_refused_before_downloading_with_the_numbers(hub, node):
    d = run(node, HUGE)
    assert d.error_code == "disk_full"
    assert d.error.startswith(f"Not enough disk for {HUGE}: 40000.0 GB more are needed but only ")
    assert "GB are free on" in d.error and "Delete unused weights" in d.error
    assert not [p for m, p, h in hub.requests if "/resolve/" in p]  # nothing was fetched


def test_a_network_failure_says_check_the_connection(hub, node, settings):
    settings.PORTAL_HF_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens
    d = run(node, TINY)
    assert d.error_code == "network"
    assert d.error.startswith("Could not reach the hub at http://127.0.0.1:9 (ConnectError): the network is down")
    assert "then resume: what is on disk is kept." in d.error


def test_a_connection_cut_mid_file_is_retried_and_the_file_is_whole(hub, node, settings):
    repo = hub.repos[SLOW]
    repo.mode, repo.fail_after, repo.cut_times, repo.rate_bps = "cut", 12 * MB, 1, None
    d = run(node, SLOW)
    assert d.status == "done", d.error
    assert repo.cut_times == 0  # the hub did drop the connection once
    item = repo.files["model-00001-of-00001.safetensors"]
    blob = settings.PORTAL_WEIGHTS_DIR / "hub" / "models--acme--slow-llama" / "blobs" / item.sha256
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == item.sha256


def test_a_second_request_joins_the_first(hub, node, operator_user):
    first, joined = services.download_request(actor=operator_user, node=node, repo_id=TINY)
    second, joined_again = services.download_request(actor=operator_user, node=node, repo_id=TINY)
    assert (joined, joined_again) == (False, True)
    assert first.pk == second.pk
    assert Download.objects.filter(repo_id=TINY).count() == 1


def test_the_token_is_never_echoed(hub, node, admin_user, client):
    client.force_login(admin_user)
    response = client.put(f"/api/models/nodes/{node.name}/hub-token", {"token": GATED_TOKEN},
                          content_type="application/json")
    assert response.status_code == 200
    assert response.json()["token_set"] is True
    assert GATED_TOKEN not in response.content.decode()
    assert GATED_TOKEN not in client.get(f"/api/models/nodes/{node.name}/hub-token").content.decode()
    assert GATED_TOKEN not in client.get("/models/weights/").content.decode()
    from accounts.models import AuditEvent

    event = AuditEvent.objects.get(action="models.hubtoken.set")
    assert GATED_TOKEN not in str(event.details)
