"""REST API, weights on disk, memory estimate and the CLI."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEvent
from models_registry import services
from models_registry.models import ModelProfile
from tests.models_registry.conftest import TINY

BODY = {"name": "tiny", "repo_id": TINY, "gpu_memory_utilization": 0.5, "max_model_len": 4096, "max_num_seqs": 8}


@pytest.fixture
def api(client, operator_user):
    client.force_login(operator_user)
    return client


def test_profiles_crud_clone_and_command_over_the_api(api, node):
    created = api.post("/api/models/profiles", BODY, content_type="application/json")
    assert created.status_code == 201, created.content
    pid = created.json()["id"]
    patched = api.patch(f"/api/models/profiles/{pid}", {"max_model_len": 8192}, content_type="application/json")
    assert patched.json()["max_model_len"] == 8192
    clone = api.post(f"/api/models/profiles/{pid}/clone", {"name": "tiny-copy"}, content_type="application/json")
    assert clone.status_code == 201 and clone.json()["served_model_name"] == "tiny-copy"
    command = api.get(f"/api/models/profiles/{pid}/command?port=8123").json()
    assert command["argv"][:3] == ["vllm", "serve", TINY]
    assert "--max-model-len 8192" in command["command_line"]
    assert "--port 8123" in command["command_line"]
    assert api.delete(f"/api/models/profiles/{clone.json()['id']}").status_code == 204
    listing = api.get("/api/models/profiles").json()
    assert [p["name"] for p in listing["items"]] == ["tiny"]


def test_bad_input_over_the_api_gets_the_message(api, db):
    bad = api.post("/api/models/profiles", {**BODY, "gpu_memory_utilization": 1.5}, content_type="application/json")
    assert bad.status_code == 400
    assert bad.json()["detail"] == ("gpu_memory_utilization must be more than 0 and at most 1 (a fraction of GPU "
                                    "memory, e.g. 0.7): got 1.5.")
    assert bad.json()["errors"] == {"gpu_memory_utilization": bad.json()["detail"]}
    url = api.post("/api/models/profiles", {**BODY, "repo_id": "https://huggingface.co/acme/x"},
                   content_type="application/json")
    assert "is a URL: paste only the owner/name part" in url.json()["detail"]


def test_members_may_look_but_not_change(client, member_user, db):
    client.force_login(member_user)
    assert client.get("/api/models/profiles").status_code == 200
    refused = client.post("/api/models/profiles", BODY, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only operators and admins may do this: ask an admin for the operator role."
    assert client.get("/api/models/catalog").status_code == 200


def test_catalog_over_the_api_adds_a_profile_in_one_call(api, db):
    rows = {r["name"]: r for r in api.get("/api/models/catalog").json()}
    coder = rows["qwen25-coder-32b"]
    assert coder["size_gb"] == 65.5
    # 64 layers x 8 KV heads x 128 x 2 x 2 bytes = 256 KiB a token; 32768 tokens = 8.6 GB, plus 65.5 GB weights
    assert coder["estimated_memory_gb"] == 74.1
    added = api.post("/api/models/catalog/qwen25-coder-32b/add", content_type="application/json")
    assert added.status_code == 201 and added.json()["catalog_name"] == "qwen25-coder-32b"
    assert api.get("/api/models/catalog").json()[0]["added"] is True
    again = api.post("/api/models/catalog/qwen25-coder-32b/add", content_type="application/json")
    assert again.status_code == 400 and "already exists" in again.json()["detail"]


def test_memory_estimate_from_the_hub_then_from_disk(hub, node, operator_user):
    node.gpu_facts = [{"memory_total_gb": 80.0, "unified_memory": False}]
    node.save()
    profile = services.profile_create(actor=operator_user, data=BODY)
    before = services.memory_estimate(profile=profile, node=node)
    assert before.weights_bytes is None and before.fits is None
    assert "download the weights or look the repo up" in before.notes[0]
    fetched = services.memory_estimate(profile=profile, node=node, fetch=True)
    # config.json of the fake repo: 16 layers x 8 KV heads x head_dim 64 x 2 (K, V) x 2 bytes (bfloat16)
    assert fetched.kv_bytes_per_token == 16 * 8 * 64 * 2 * 2
    assert fetched.kv_bytes_max_model_len == 16 * 8 * 64 * 2 * 2 * 4096
    assert fetched.kv_bytes_concurrent == fetched.kv_bytes_max_model_len * 8
    weights = sum(f.size for p, f in hub.repos[TINY].files.items() if p.endswith(".safetensors"))
    assert (fetched.weights_bytes, fetched.weights_source, fetched.config_source) == (weights, "hub", "hub")
    assert fetched.total_bytes == weights + fetched.kv_bytes_max_model_len
    assert fetched.node_memory_bytes == 80 * 1024**3 and fetched.budget_bytes == 40 * 1024**3
    assert fetched.fits is True
    download, _ = services.download_request(actor=operator_user, node=node, profile=profile)
    services.download_run(download_id=download.pk)
    on_disk = services.memory_estimate(profile=profile, node=node)
    assert (on_disk.weights_source, on_disk.config_source) == ("disk", "disk")
    assert on_disk.as_dict()["total_gb"] == round(on_disk.total_bytes / 1e9, 2)


def test_the_cli_lists_adds_downloads_and_deletes(hub, node, admin_user):
    out = io.StringIO()
    call_command("models", "catalog", stdout=out)
    assert "qwen25-coder-32b" in out.getvalue() and "74.1" in out.getvalue()
    call_command("models", "add-from-catalog", "bge-m3", stdout=out)
    assert ModelProfile.objects.get(name="bge-m3").created_by == admin_user
    services.profile_create(actor=admin_user, data=BODY)
    out = io.StringIO()
    call_command("models", "download", "tiny", "--foreground", stdout=out)
    assert "Queued a download" in out.getvalue() and "done: 100.0%" in out.getvalue()
    out = io.StringIO()
    call_command("models", "list", stdout=out)
    assert "tiny" in out.getvalue() and "done 100.0%" in out.getvalue()
    with pytest.raises(CommandError) as err:
        call_command("models", "download", "nope")
    assert "No profile named 'nope'. Profiles: bge-m3, tiny." in str(err.value)
    with pytest.raises(CommandError) as err:
        call_command("models", "download", "tiny", "--node", "elsewhere")
    assert "No node named 'elsewhere'" in str(err.value)
    out = io.StringIO()
    call_command("models", "weights", "--scan", stdout=out)
    assert f"{node.name}: listed " in out.getvalue() and "GB free of" in out.getvalue()
    assert "acme/tiny-llama" in out.getvalue() and "tiny" in out.getvalue()
    out = io.StringIO()
    call_command("models", "delete-weights", "tiny", "--yes", "--foreground", stdout=out)
    assert f"Deleted the weights of acme/tiny-llama on {node.name}: 3.2 MB freed." in out.getvalue()
    with pytest.raises(CommandError) as err:
        call_command("models", "delete-weights", "tiny", "--yes", "--timeout", "0")
    assert f"No answer from {node.name}'s worker within 0 s: is it running" in str(err.value)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"models.profile.created", "models.download.requested", "models.weights.deleted"} <= actions
