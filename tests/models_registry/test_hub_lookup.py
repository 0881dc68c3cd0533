"""Looking a repo up on the hub is a task on the node's queue with a deadline; web requests never wait on it."""
from datetime import timedelta

from django.utils import timezone

from models_registry import selectors, services
from models_registry.models import RepoSnapshot
from tests.models_registry.conftest import TINY

BODY = {"name": "tiny", "repo_id": TINY, "gpu_memory_utilization": 0.5, "max_model_len": 4096}


def test_the_api_queues_a_lookup_and_the_node_answers_it(hub, node, operator_user, client):
    client.force_login(operator_user)
    profile = services.profile_create(actor=operator_user, data=BODY)
    hub.repos[TINY].mode = "stall_api"  # the hub is slow: the request must not care
    queued = client.post(f"/api/models/profiles/{profile.pk}/lookup", content_type="application/json")
    assert queued.status_code == 202
    assert {k: queued.json()[k] for k in ("status", "node", "joined")} == {"status": "queued", "node": node.name,
                                                                          "joined": False}
    again = client.post(f"/api/models/profiles/{profile.pk}/lookup", content_type="application/json")
    assert (again.json()["id"], again.json()["joined"]) == (queued.json()["id"], True)
    assert client.get(f"/api/models/profiles/{profile.pk}/memory").json()["weights_source"] == ""
    hub.repos[TINY].mode = "ok"
    hub.release_stall.set()
    snap = services.repo_lookup_run(snapshot_id=queued.json()["id"])  # what the node's worker runs
    assert snap.lookup_status == "done" and snap.config["num_hidden_layers"] == 16
    assert client.get(f"/api/models/lookups/{snap.pk}").json()["status"] == "done"
    memory = client.get(f"/api/models/profiles/{profile.pk}/memory").json()
    assert (memory["weights_source"], memory["config_source"]) == ("hub", "hub")


def test_a_hub_that_does_not_answer_ends_the_lookup_with_a_message(hub, node, settings):
    settings.PORTAL_HUB_LOOKUP_TIMEOUT_S = 0.3
    hub.repos[TINY].mode = "stall_api"
    snap, _ = services.repo_lookup_request(repo_id=TINY, revision="main", node=node)
    failed = services.repo_lookup_run(snapshot_id=snap.pk)
    assert (failed.lookup_status, failed.lookup_error_code) == ("failed", "timeout")
    assert failed.lookup_error == (f"The hub at {hub.url} did not answer within 0.3 s about {TINY}: check the network "
                                   "from this node (or HF_ENDPOINT and proxy settings), then look it up again.")


def test_a_missing_repo_and_a_lost_lookup_say_what_to_do(hub, node):
    snap, _ = services.repo_lookup_request(repo_id="acme/no-such-model", revision="main", node=node)
    failed = services.repo_lookup_run(snapshot_id=snap.pk)
    assert failed.lookup_error == f"No repo acme/no-such-model on {hub.url} (404): check the spelling of owner/name."
    snap, joined = services.repo_lookup_request(repo_id=TINY, revision="main", node=node)
    assert not joined and selectors.repo_lookup_state(snap)["status"] == "queued"
    # Nobody picked it up (the node's worker is down) for longer than any look-up takes.
    RepoSnapshot.objects.filter(pk=snap.pk).update(lookup_requested_at=timezone.now() - timedelta(minutes=5))
    snap.refresh_from_db()
    assert selectors.repo_lookup_state(snap) == {
        "status": "failed", "active": False,
        "error": f"No answer from {node.name}'s worker about {TINY}: check that the worker of {node.name} is running "
                 "(it consumes the node's queue), then look it up again."}
    _, joined = services.repo_lookup_request(repo_id=TINY, revision="main", node=node)
    assert joined is False  # a lost look-up is queued again, not joined
