"""Model profiles: create, edit, clone, delete (each audited), and the command line they launch."""
from __future__ import annotations

import re
import shlex
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from accounts.models import User
from accounts.services import audit_record
from models_registry import validation
from models_registry.models import ModelProfile
from sparkportal.exceptions import InvalidTransition, ValidationFailed

PROFILE_FIELDS = (
    "name", "source", "repo_id", "revision", "local_path", "engine", "served_model_name", "task", "dtype",
    "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "pipeline_parallel_size", "quantization",
    "kv_cache_dtype", "enable_prefix_caching", "max_num_seqs", "extra_flags", "extra_env", "notes",
    "ignore_patterns", "catalog_name",
)


def profile_problems(profile: ModelProfile) -> dict[str, str]:
    """Every rule a profile must follow, as {field: message}. Empty means valid."""
    errors: dict[str, str] = {}
    if not profile.name or not re.match(r"^[-a-zA-Z0-9_]+$", profile.name):
        errors["name"] = (f"Name {profile.name!r} must be a slug: letters, digits, '-' and '_' only "
                          "(e.g. qwen25-coder-32b).")
    if profile.source == ModelProfile.Source.HUB:
        if (msg := validation.check_repo_id(profile.repo_id)) is not None:
            errors["repo_id"] = msg
        if (msg := validation.check_revision(profile.revision)) is not None:
            errors["revision"] = msg
    elif profile.source == ModelProfile.Source.LOCAL:
        if (msg := validation.check_local_path(profile.local_path)) is not None:
            errors["local_path"] = msg
    else:
        errors["source"] = f"Source {profile.source!r} is unknown: use 'hub' or 'local'."
    if profile.engine not in ModelProfile.Engine.values:
        errors["engine"] = f"Engine {profile.engine!r} is unknown: use 'vllm' or 'tei'."
    if profile.task not in ModelProfile.Task.values:
        errors["task"] = f"Task {profile.task!r} is unknown: use one of {', '.join(ModelProfile.Task.values)}."
    elif profile.engine == "tei" and profile.task not in ("embed", "rerank"):
        errors["task"] = "TEI serves embeddings and rerankers only: pick task embed or rerank, or engine vllm."
    util = profile.gpu_memory_utilization
    if util is None or not isinstance(util, int | float) or not 0 < util <= 1:
        errors["gpu_memory_utilization"] = (f"gpu_memory_utilization must be more than 0 and at most 1 (a fraction "
                                            f"of GPU memory, e.g. 0.7): got {util}.")
    if profile.max_model_len is not None and (not isinstance(profile.max_model_len, int) or profile.max_model_len <= 0):
        errors["max_model_len"] = (f"max_model_len must be a positive number of tokens, e.g. 32768: "
                                   f"got {profile.max_model_len}.")
    if profile.max_num_seqs is not None and profile.max_num_seqs <= 0:
        errors["max_num_seqs"] = f"max_num_seqs must be at least 1: got {profile.max_num_seqs}."
    for field in ("tensor_parallel_size", "pipeline_parallel_size"):
        if not isinstance(getattr(profile, field), int) or getattr(profile, field) < 1:
            errors[field] = f"{field} must be at least 1: got {getattr(profile, field)}."
    if profile.dtype not in validation.DTYPES:
        errors["dtype"] = f"dtype {profile.dtype!r} is unknown: use one of {', '.join(validation.DTYPES)}."
    if (profile.kv_cache_dtype or "auto") not in validation.KV_CACHE_DTYPES:
        errors["kv_cache_dtype"] = (f"kv_cache_dtype {profile.kv_cache_dtype!r} is unknown: use one of "
                                    f"{', '.join(validation.KV_CACHE_DTYPES)}.")
    _argv, problems = validation.split_flags(profile.engine, profile.extra_flags)
    if problems:
        errors["extra_flags"] = " ".join(problems)
    if (msg := validation.check_extra_env(profile.extra_env)) is not None:
        errors["extra_env"] = msg
    if not isinstance(profile.ignore_patterns, list) or not all(isinstance(p, str) for p in profile.ignore_patterns):
        errors["ignore_patterns"] = 'Ignore patterns must be a list of globs, e.g. ["original/*", "*.pth"].'
    clash = ModelProfile.objects.filter(name=profile.name).exclude(pk=profile.pk).exists()
    if clash:
        errors["name"] = f"A profile named {profile.name!r} already exists: pick another name."
    return errors


def _raise_if_invalid(profile: ModelProfile) -> None:
    errors = profile_problems(profile)
    if errors:
        raise ValidationFailed(" ".join(errors.values()), extra={"errors": errors})
    try:
        profile.full_clean(validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        messages = {k: " ".join(v) for k, v in exc.message_dict.items()}
        raise ValidationFailed(" ".join(f"{k}: {v}" for k, v in messages.items()), extra={"errors": messages}) from exc


def _apply(profile: ModelProfile, data: dict[str, Any]) -> list[str]:
    changed = []
    for key, value in data.items():
        if key not in PROFILE_FIELDS:
            raise ValidationFailed(f"Unknown profile field {key!r}: fields are {', '.join(PROFILE_FIELDS)}.")
        if isinstance(value, str) and key not in ("notes", "extra_flags"):
            value = value.strip()
        if getattr(profile, key) != value:
            setattr(profile, key, value)
            changed.append(key)
    if profile.source == ModelProfile.Source.HUB and not profile.revision:
        profile.revision = "main"
    return changed


def _save(profile: ModelProfile) -> None:
    try:
        with transaction.atomic():
            profile.save()
    except IntegrityError as exc:
        # Two people saving the same name at once: the unique index decides.
        raise ValidationFailed(f"A profile named {profile.name!r} already exists: pick another name.",
                               extra={"errors": {"name": "duplicate"}}) from exc


@transaction.atomic
def profile_create(*, actor: User | None, data: dict[str, Any], ip: str | None = None) -> ModelProfile:
    profile = ModelProfile(created_by=actor if actor is not None and actor.pk else None)
    _apply(profile, data)
    _raise_if_invalid(profile)
    _save(profile)
    audit_record(actor=actor, action="models.profile.created", target=profile, ip=ip,
                 details={"name": profile.name, "source": profile.repo_id or profile.local_path,
                          "engine": profile.engine, "catalog": profile.catalog_name or None})
    return profile


@transaction.atomic
def profile_update(*, profile: ModelProfile, actor: User | None, data: dict[str, Any],
                   ip: str | None = None) -> ModelProfile:
    before = {key: getattr(profile, key) for key in PROFILE_FIELDS}
    changed = _apply(profile, data)
    if not changed:
        return profile
    _raise_if_invalid(profile)
    _save(profile)
    audit_record(actor=actor, action="models.profile.updated", target=profile, ip=ip,
                 details={"name": profile.name,
                          "changes": {k: [before[k], getattr(profile, k)] for k in changed}})
    return profile


@transaction.atomic
def profile_clone(*, profile: ModelProfile, actor: User | None, name: str, ip: str | None = None) -> ModelProfile:
    data = {key: getattr(profile, key) for key in PROFILE_FIELDS}
    # A clone answers to its own name, so two servers never claim one model name by accident.
    data.update(name=name, served_model_name=name, catalog_name="")
    clone = ModelProfile(created_by=actor if actor is not None and actor.pk else None)
    _apply(clone, data)
    _raise_if_invalid(clone)
    _save(clone)
    audit_record(actor=actor, action="models.profile.cloned", target=clone, ip=ip,
                 details={"name": clone.name, "from": profile.name, "from_id": profile.pk})
    return clone


@transaction.atomic
def profile_delete(*, profile: ModelProfile, actor: User | None, ip: str | None = None) -> None:
    name, pk = profile.name, profile.pk
    try:
        with transaction.atomic():
            profile.delete()
    except ProtectedError as exc:
        count = len(exc.protected_objects)
        raise InvalidTransition(f"Profile {name} is used by {count} server(s): delete those servers (or point them "
                                "at another profile) first.", code="profile_in_use") from exc
    audit_record(actor=actor, action="models.profile.deleted", target_type="models_registry.modelprofile",
                 target_id=str(pk), ip=ip, details={"name": name})


def profile_model_ref(profile: ModelProfile) -> str:
    """What the engine is told to load: the repo id (from the node's cache) or the local folder."""
    return profile.local_path if profile.source == ModelProfile.Source.LOCAL else profile.repo_id


def profile_argv(*, profile: ModelProfile, node=None, port: int = 8000, host: str = "127.0.0.1") -> list[str]:
    """The exact argv a server of this profile launches (never a shell string).

    vLLM: `<vllm> serve <model> --served-model-name ... --port ...`; TEI: `<router> --model-id <model> ...`.
    Weights come from the node's cache (HF_HOME), which the launcher sets together with HF_HUB_OFFLINE=1.
    """
    extra, _problems = validation.split_flags(profile.engine, profile.extra_flags)
    name = profile.model_name
    if profile.engine == ModelProfile.Engine.TEI:
        exe = (getattr(node, "tei_executable", "") or "text-embeddings-router")
        argv = [exe, "--model-id", profile_model_ref(profile)]
        if profile.source == ModelProfile.Source.HUB and profile.revision not in ("", "main"):
            argv += ["--revision", profile.revision]
        argv += ["--served-model-name", name, "--hostname", host, "--port", str(port)]
        if profile.dtype in ("float16", "float32"):
            argv += ["--dtype", profile.dtype]
        argv += ["--huggingface-hub-cache", str(settings.PORTAL_WEIGHTS_DIR / "hub")]
        return argv + extra
    exe = (getattr(node, "vllm_executable", "") or "vllm")
    argv = [exe, "serve", profile_model_ref(profile)]
    if profile.source == ModelProfile.Source.HUB and profile.revision not in ("", "main"):
        argv += ["--revision", profile.revision]
    argv += ["--served-model-name", name, "--host", host, "--port", str(port), "--dtype", profile.dtype]
    if profile.max_model_len:
        argv += ["--max-model-len", str(profile.max_model_len)]
    argv += ["--gpu-memory-utilization", f"{profile.gpu_memory_utilization:g}"]
    argv += ["--tensor-parallel-size", str(profile.tensor_parallel_size)]
    if profile.pipeline_parallel_size > 1:
        argv += ["--pipeline-parallel-size", str(profile.pipeline_parallel_size),
                 "--distributed-executor-backend", "ray"]
    if profile.quantization:
        argv += ["--quantization", profile.quantization]
    if profile.kv_cache_dtype and profile.kv_cache_dtype != "auto":
        argv += ["--kv-cache-dtype", profile.kv_cache_dtype]
    argv.append("--enable-prefix-caching" if profile.enable_prefix_caching else "--disable-prefix-caching")
    if profile.max_num_seqs:
        argv += ["--max-num-seqs", str(profile.max_num_seqs)]
    return argv + extra


def profile_command_line(*, profile: ModelProfile, node=None, port: int = 8000) -> str:
    """The argv shown to people, quoted so it can be pasted into a terminal."""
    env = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted((profile.extra_env or {}).items()))
    line = shlex.join(profile_argv(profile=profile, node=node, port=port))
    return f"{env} {line}".strip()
