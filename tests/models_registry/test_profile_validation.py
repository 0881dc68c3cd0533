"""Bad profile input is refused with a message that says what to write instead."""
import pytest

from accounts.models import AuditEvent
from models_registry import services
from models_registry.models import ModelProfile
from sparkportal.exceptions import ValidationFailed

GOOD = {"name": "coder", "repo_id": "Qwen/Qwen2.5-Coder-32B-Instruct", "gpu_memory_utilization": 0.7}


@pytest.fixture
def nobody(db):
    """Validation runs before anyone is recorded; a user (and its password hashing) is not needed."""
    return None


def create(user, **changes):
    return services.profile_create(actor=user, data={**GOOD, **changes})


@pytest.mark.parametrize("repo_id, message", [
    ("Qwen2.5-Coder", "is not owner/name"),
    ("../../etc/passwd", "looks like a file path"),
    ("/srv/models/qwen", "looks like a file path"),
    ("https://huggingface.co/Qwen/Qwen2.5-Coder-32B-Instruct", "is a URL: paste only the owner/name part"),
    ("Qwen/Qwen 2.5", "contains spaces"),
    ("Qwen/Qwen2.5\tInstruct", "contains spaces"),
    ("a/b/c", "is not owner/name"),
    ("owner/..", "looks like a file path"),
    ("", "Give the Hugging Face repo id as owner/name"),
])
def test_it_rejects_repo_ids_that_are_not_owner_name(nobody, repo_id, message):
    with pytest.raises(ValidationFailed) as err:
        services.profile_create(actor=nobody, data={**GOOD, "repo_id": repo_id})
    assert message in err.value.message
    assert "repo_id" in err.value.extra["errors"]


def test_it_rejects_local_folders_outside_the_model_roots(nobody, settings, tmp_path):
    settings.PORTAL_MODEL_ROOTS = [tmp_path / "models"]
    (tmp_path / "models" / "qwen").mkdir(parents=True)
    with pytest.raises(ValidationFailed) as err:
        create(nobody, source="local", repo_id="", local_path="/etc")
    assert "Local folder /etc is outside the model roots" in err.value.message
    assert "PORTAL_MODEL_ROOTS" in err.value.message
    with pytest.raises(ValidationFailed) as err:
        create(nobody, source="local", repo_id="", local_path=str(tmp_path / "models" / ".." / ".." / "x"))
    assert "outside the model roots" in err.value.message
    profile = create(nobody, source="local", repo_id="", local_path=str(tmp_path / "models" / "qwen"))
    assert profile.local_path.endswith("qwen")


@pytest.mark.parametrize("value", [0, -0.1, 1.5])
def test_it_rejects_gpu_memory_utilization_outside_zero_one(nobody, value):
    with pytest.raises(ValidationFailed) as err:
        create(nobody, gpu_memory_utilization=value)
    assert f"gpu_memory_utilization must be more than 0 and at most 1 (a fraction of GPU memory, e.g. 0.7): " \
           f"got {value}." in err.value.message


@pytest.mark.parametrize("value", [0, -5])
def test_it_rejects_max_model_len_not_positive(nobody, value):
    with pytest.raises(ValidationFailed) as err:
        create(nobody, max_model_len=value)
    assert f"max_model_len must be a positive number of tokens, e.g. 32768: got {value}." in err.value.message


@pytest.mark.parametrize("flags, message", [
    ("--enable-auto-tool-choice; rm -rf /", "Extra flags contain shell syntax (';')"),
    ("--served-model-name `whoami`", "shell syntax ('`')"),
    ("--trust-remote-code && curl evil", "shell syntax ('&')"),
    ("--max-num-batched-tokens 8192 --made-up-flag 3", "vLLM 0.33.0 does not know --made-up-flag"),
    ("--gpu-memory-utilization 0.9", "Extra flags repeat --gpu-memory-utilization, which the profile sets itself: "
                                     "use the field(s) gpu_memory_utilization instead."),
    ("--chat-template 'unclosed", "Extra flags could not be split"),
])
def test_it_rejects_extra_flags_that_are_not_engine_flags(nobody, flags, message):
    with pytest.raises(ValidationFailed) as err:
        create(nobody, extra_flags=flags)
    assert message in err.value.message


def test_it_accepts_real_engine_flags_and_keeps_them_as_argv(nobody):
    profile = create(nobody, extra_flags="--enable-auto-tool-choice --tool-call-parser hermes "
                                                "--hf-overrides '{\"rope_scaling\": null}'")
    argv = services.profile_argv(profile=profile, port=8011)
    assert argv[:3] == ["vllm", "serve", "Qwen/Qwen2.5-Coder-32B-Instruct"]
    assert argv[-5:] == ["--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--hf-overrides",
                         '{"rope_scaling": null}']
    assert argv[argv.index("--port"):argv.index("--port") + 2] == ["--port", "8011"]
    assert "--gpu-memory-utilization" in argv and "0.7" in argv


def test_tei_flags_are_checked_against_tei(nobody):
    with pytest.raises(ValidationFailed) as err:
        create(nobody, name="emb", engine="tei", task="embed", extra_flags="--enable-prefix-caching")
    assert "Unknown TEI flag(s): --enable-prefix-caching" in err.value.message
    with pytest.raises(ValidationFailed) as err:
        create(nobody, name="emb", engine="tei", task="chat")
    assert "TEI serves embeddings and rerankers only" in err.value.message
    profile = create(nobody, name="emb", engine="tei", task="embed", extra_flags="--max-batch-tokens 32768")
    argv = services.profile_argv(profile=profile, port=8002)
    assert argv[:3] == ["text-embeddings-router", "--model-id", "Qwen/Qwen2.5-Coder-32B-Instruct"]
    assert argv[-2:] == ["--max-batch-tokens", "32768"]


def test_sleep_mode_is_a_field_not_a_flag_and_only_for_vllm(nobody):
    with pytest.raises(ValidationFailed) as err:
        create(nobody, extra_flags="--enable-sleep-mode")
    assert "use the field(s) enable_sleep_mode" in err.value.message
    with pytest.raises(ValidationFailed) as err:
        create(nobody, name="emb", engine="tei", task="embed", enable_sleep_mode=True)
    assert "TEI has no sleep mode" in err.value.message
    profile = create(nobody, enable_sleep_mode=True)
    assert services.profile_argv(profile=profile)[-1] == "--enable-sleep-mode"


def test_it_rejects_duplicate_names(nobody):
    create(nobody)
    with pytest.raises(ValidationFailed) as err:
        create(nobody)
    assert "A profile named 'coder' already exists: pick another name." in err.value.message


def test_it_rejects_bad_environment_names(nobody):
    with pytest.raises(ValidationFailed) as err:
        create(nobody, extra_env={"1BAD": "x"})
    assert "Environment names ['1BAD'] are not valid" in err.value.message


def test_changes_are_audited(operator_user):
    profile = create(operator_user)
    services.profile_update(profile=profile, actor=operator_user, data={"max_model_len": 8192})
    clone = services.profile_clone(profile=profile, actor=operator_user, name="coder-8k")
    services.profile_delete(profile=clone, actor=operator_user)
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["models.profile.created", "models.profile.updated", "models.profile.cloned",
                       "models.profile.deleted"]
    update = AuditEvent.objects.get(action="models.profile.updated")
    assert update.details["changes"] == {"max_model_len": [32768, 8192]}
    assert update.actor == operator_user
    assert not ModelProfile.objects.filter(name="coder-8k").exists()


def test_every_catalog_entry_becomes_a_valid_profile(operator_user):
    names = [e["name"] for e in services.catalog_entries()]
    for wanted in ("qwen25-coder-32b", "qwen35-coder-35b-a3b", "glm47-flash", "gemma3-4b-it", "gemma3-27b-it",
                   "llama33-70b-awq", "jina-embeddings-v3", "bge-m3", "bge-reranker-v2-m3"):
        assert wanted in names
    for name in names:
        profile = services.catalog_add(name=name, actor=operator_user)
        assert profile.catalog_name == name
        assert services.profile_problems(profile) == {}
    coder = ModelProfile.objects.get(name="qwen35-coder-35b-a3b")
    assert (coder.dtype, coder.max_model_len, coder.gpu_memory_utilization) == ("bfloat16", 32768, 0.70)
    assert ModelProfile.objects.get(name="gemma3-4b-it").gpu_memory_utilization == 0.15
    assert ModelProfile.objects.get(name="bge-m3").engine == "tei"
    with pytest.raises(ValidationFailed) as err:
        services.catalog_add(name="bge-m3", actor=operator_user)
    assert "A profile named 'bge-m3' already exists (added from the catalog before?)" in err.value.message


def test_only_admins_add_flags_and_environment_that_run_code(operator_user, admin_user):
    with pytest.raises(ValidationFailed) as err:
        create(operator_user, extra_flags="--trust-remote-code")
    assert "Only an admin may add --trust-remote-code" in err.value.message
    with pytest.raises(ValidationFailed) as err:
        create(operator_user, extra_env={"LD_PRELOAD": "/tmp/evil.so"})
    assert "Only an admin may set LD_PRELOAD" in err.value.message
    assert not ModelProfile.objects.exists()

    profile = create(admin_user, extra_flags="--trust-remote-code", extra_env={"PYTHONPATH": "/opt/plugins"})
    audit = AuditEvent.objects.get(action="models.profile.created")
    assert audit.details["admin_only"] == ["--trust-remote-code", "PYTHONPATH"]
    # An operator may still tune the admin's profile, keeping what the admin allowed, but add nothing of the kind.
    services.profile_update(profile=profile, actor=operator_user, data={"max_model_len": 8192})
    with pytest.raises(ValidationFailed) as err:
        services.profile_update(profile=profile, actor=operator_user,
                                data={"extra_flags": "--trust-remote-code --worker-cls evil.Worker"})
    assert "Only an admin may add --worker-cls" in err.value.message
    profile.refresh_from_db()
    assert profile.extra_flags == "--trust-remote-code" and profile.max_model_len == 8192


@pytest.mark.parametrize("changes, field, message", [
    ({"node_count": 2, "pipeline_parallel_size": 3}, "node_count", "3 GPUs do not split evenly over 2 nodes"),
    ({"node_count": 0}, "node_count", "node_count must be at least 1: got 0"),
    ({"node_count": 17, "pipeline_parallel_size": 17}, "node_count", "A placement spans 1 to 16 nodes, not 17"),
    ({"node_count": 2, "pipeline_parallel_size": 2, "engine": "tei", "task": "embed"}, "node_count",
     "Only vLLM spans several nodes"),
    ({"node_count": 2, "pipeline_parallel_size": 2, "enable_sleep_mode": True}, "enable_sleep_mode",
     "cannot sleep through the portal"),
    ({"node_count": 2, "pipeline_parallel_size": 2, "extra_flags": "--master-port 29600"}, "extra_flags",
     "--master-port is set by the portal"),
])
def test_it_rejects_placements_vllm_cannot_run(db, nobody, changes, field, message):
    with pytest.raises(ValidationFailed) as err:
        create(nobody, **changes)
    assert message in err.value.extra["errors"][field]


def test_a_two_node_profile_shows_its_leaders_command_line(db, nobody):
    profile = create(nobody, node_count=2, pipeline_parallel_size=2)
    line = services.profile_command_line(profile=profile)
    assert "--nnodes 2 --node-rank 0 --master-addr LEADER_IP --master-port 29501" in line
    assert "--headless" not in line
