"""A multi-node profile chooses its backend, mp or ray, through the service, the API and the form; anything else is
refused with what to write instead."""
import pytest

from models_registry import services
from models_registry.forms import ProfileForm
from sparkportal.exceptions import ValidationFailed
from tests.models_registry.conftest import TINY

BODY = {"name": "across", "repo_id": TINY, "gpu_memory_utilization": 0.5, "max_model_len": 4096, "node_count": 2,
        "pipeline_parallel_size": 2}
WHAT_TO_WRITE = "distributed_backend is mp (vLLM's own multi-node launch) or ray (a Ray cluster the portal starts"


@pytest.fixture
def api(client, operator_user):
    client.force_login(operator_user)
    return client


@pytest.mark.parametrize("backend", ["slurm", "RAY", "", "x" * 500])
def test_the_service_refuses_a_backend_other_than_mp_or_ray(db, backend):
    with pytest.raises(ValidationFailed) as err:
        services.profile_create(actor=None, data={**BODY, "distributed_backend": backend})
    assert WHAT_TO_WRITE in err.value.extra["errors"]["distributed_backend"]


def test_the_api_takes_ray_shows_its_command_line_and_refuses_anything_else(api):
    refused = api.post("/api/models/profiles", {**BODY, "distributed_backend": "slurm"},
                       content_type="application/json")
    assert refused.status_code == 400, refused.content
    assert "not 'slurm'" in refused.content.decode()
    created = api.post("/api/models/profiles", {**BODY, "distributed_backend": "ray"}, content_type="application/json")
    assert created.status_code in (200, 201), created.content
    assert created.json()["distributed_backend"] == "ray"
    line = api.get(f"/api/models/profiles/{created.json()['id']}/command").json()
    text = line if isinstance(line, str) else str(line)
    assert "--distributed-executor-backend ray" in text and "--nnodes" not in text
    patched = api.patch(f"/api/models/profiles/{created.json()['id']}", {"distributed_backend": "mpi"},
                        content_type="application/json")
    assert patched.status_code == 400 and "not 'mpi'" in patched.content.decode()


def test_the_form_offers_mp_and_ray_and_defaults_to_mp():
    form = ProfileForm(data={**BODY, "source": "hub", "engine": "vllm", "task": "chat", "dtype": "bfloat16",
                             "kv_cache_dtype": "auto", "distributed_backend": "slurm"})
    assert not form.is_valid() and "distributed_backend" in form.errors
    choices = [value for value, _label in form.fields["distributed_backend"].choices]
    assert choices == ["mp", "ray"]
    blank = ProfileForm(data={**BODY, "source": "hub", "engine": "vllm", "task": "chat", "dtype": "bfloat16",
                              "kv_cache_dtype": "auto"})
    blank.is_valid()
    assert blank.cleaned_data["distributed_backend"] == "mp"
