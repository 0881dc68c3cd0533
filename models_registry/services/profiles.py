"""Model profiles: create, edit, clone, delete (each audited), and the command line they launch."""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from accounts.models import User
from accounts.services import audit_record
from engines import argv as engine_argv
from engines import flags as engine_flags
from engines import multinode
from models_registry import validation
from models_registry.models import ModelProfile
from nodes.models import Node
from sparkportal.exceptions import InvalidTransition, ValidationFailed

PROFILE_FIELDS = (
    "name", "source", "repo_id", "revision", "local_path", "engine", "served_model_name", "task", "dtype",
    "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "pipeline_parallel_size", "node_count",
    "distributed_backend", "quantization",
    "kv_cache_dtype", "enable_prefix_caching", "max_num_seqs", "enable_sleep_mode", "extra_flags", "extra_env", "notes",
    "ignore_patterns", "catalog_name",
)


def profile_problems(profile: ModelProfile, *, actor: User | None = None,
                     before: dict[str, Any] | None = None) -> dict[str, str]:
    """Every rule a profile must follow, as {field: message}. Empty means valid.

    Admin-only flags and environment (engines.flags) may be added by an admin, or by the host's own
    command line (no actor); anyone else may keep those already on the profile (`before`) but add none.
    """
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
    if profile.engine == "tei" and profile.enable_sleep_mode:
        errors["enable_sleep_mode"] = "TEI has no sleep mode: turn enable_sleep_mode off, or use engine vllm."
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
    errors.update(_placement_problems(profile))
    errors.update(_engine_problems(profile, actor=actor, before=before))
    if not isinstance(profile.ignore_patterns, list) or not all(isinstance(p, str) for p in profile.ignore_patterns):
        errors["ignore_patterns"] = 'Ignore patterns must be a list of globs, e.g. ["original/*", "*.pth"].'
    clash = ModelProfile.objects.filter(name=profile.name).exclude(pk=profile.pk).exists()
    if clash:
        errors["name"] = f"A profile named {profile.name!r} already exists: pick another name."
    return errors


def _placement_problems(profile: ModelProfile) -> dict[str, str]:
    nodes = profile.node_count
    if not isinstance(nodes, int) or nodes < 1:
        return {"node_count": f"node_count must be at least 1: got {nodes}."}
    if profile.distributed_backend not in multinode.BACKENDS:
        return {"distributed_backend": f"distributed_backend is mp (vLLM's own multi-node launch) or ray (a Ray "
                                       f"cluster the portal starts on the nodes), not "
                                       f"{str(profile.distributed_backend)[:40]!r}."}
    if nodes == 1 or not all(isinstance(getattr(profile, f), int) and getattr(profile, f) >= 1
                             for f in ("tensor_parallel_size", "pipeline_parallel_size")):
        return {}
    if profile.engine != "vllm":
        return {"node_count": "Only vLLM spans several nodes: set node_count to 1, or use engine vllm."}
    if profile.enable_sleep_mode:
        return {"enable_sleep_mode": "A model across several nodes cannot sleep through the portal: turn "
                                     "enable_sleep_mode off, or set node_count to 1."}
    problems = multinode.placement_problems(multinode.Placement(
        nodes=nodes, tensor_parallel_size=profile.tensor_parallel_size,
        pipeline_parallel_size=profile.pipeline_parallel_size, backend=profile.distributed_backend))
    return {"node_count": " ".join(problems)} if problems else {}


def _engine_problems(profile: ModelProfile, *, actor: User | None, before: dict[str, Any] | None) -> dict[str, str]:
    errors: dict[str, str] = {}
    dtypes = engine_flags.dtype_choices()
    if profile.dtype not in dtypes:
        errors["dtype"] = f"dtype {profile.dtype!r} is unknown: use one of {', '.join(dtypes)}."
    kv_dtypes = engine_flags.kv_cache_dtype_choices()
    if (profile.kv_cache_dtype or "auto") not in kv_dtypes:
        errors["kv_cache_dtype"] = (f"kv_cache_dtype {profile.kv_cache_dtype!r} is unknown: use one of "
                                    f"{', '.join(kv_dtypes)}.")
    admin = actor is None or actor.is_portal_admin
    before = before or {}
    kept_flags = engine_flags.admin_only_flag_names(profile.engine, before.get("extra_flags") or "")
    check = engine_flags.check_extra_flags(profile.engine, profile.extra_flags, may_add_admin_only=admin,
                                           allowed_admin_only=kept_flags)
    if check.problems:
        errors["extra_flags"] = " ".join(p if p.endswith(".") else p + "." for p in check.problems)
    old_env = before.get("extra_env") if isinstance(before.get("extra_env"), dict) else {}
    kept_env = frozenset(engine_flags.admin_only_env_names(old_env))
    env_problems, _code = engine_flags.check_extra_env(profile.extra_env, may_add_admin_only=admin,
                                                       allowed_admin_only=kept_env)
    if env_problems:
        errors["extra_env"] = " ".join(env_problems)
    return errors


def profile_admin_only(profile: ModelProfile) -> list[str]:
    """The admin-only flags and environment names a profile carries (shown and audited)."""
    return sorted(engine_flags.admin_only_flag_names(profile.engine, profile.extra_flags)) + \
        engine_flags.admin_only_env_names(profile.extra_env if isinstance(profile.extra_env, dict) else {})


def _raise_if_invalid(profile: ModelProfile, *, actor: User | None = None,
                      before: dict[str, Any] | None = None) -> None:
    errors = profile_problems(profile, actor=actor, before=before)
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
    _raise_if_invalid(profile, actor=actor)
    _save(profile)
    audit_record(actor=actor, action="models.profile.created", target=profile, ip=ip,
                 details={"name": profile.name, "source": profile.repo_id or profile.local_path,
                          "engine": profile.engine, "catalog": profile.catalog_name or None,
                          "admin_only": profile_admin_only(profile)})
    return profile


@transaction.atomic
def profile_update(*, profile: ModelProfile, actor: User | None, data: dict[str, Any],
                   ip: str | None = None) -> ModelProfile:
    before = {key: getattr(profile, key) for key in PROFILE_FIELDS}
    changed = _apply(profile, data)
    if not changed:
        return profile
    _raise_if_invalid(profile, actor=actor, before=before)
    _save(profile)
    audit_record(actor=actor, action="models.profile.updated", target=profile, ip=ip,
                 details={"name": profile.name, "admin_only": profile_admin_only(profile),
                          "changes": {k: [before[k], getattr(profile, k)] for k in changed}})
    return profile


@transaction.atomic
def profile_clone(*, profile: ModelProfile, actor: User | None, name: str, ip: str | None = None) -> ModelProfile:
    data = {key: getattr(profile, key) for key in PROFILE_FIELDS}
    # A clone answers to its own name, so two servers never claim one model name by accident.
    data.update(name=name, served_model_name=name, catalog_name="")
    clone = ModelProfile(created_by=actor if actor is not None and actor.pk else None)
    _apply(clone, data)
    _raise_if_invalid(clone, actor=actor, before=data)
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


def profile_serve_spec(profile: ModelProfile) -> engine_argv.ServeSpec:
    """The engine-facing values of a profile."""
    hub = profile.source == ModelProfile.Source.HUB
    return engine_argv.ServeSpec(
        engine=profile.engine, model=profile_model_ref(profile), served_model_name=profile.model_name,
        revision=profile.revision if hub else "", dtype=profile.dtype, max_model_len=profile.max_model_len,
        gpu_memory_utilization=profile.gpu_memory_utilization, tensor_parallel_size=profile.tensor_parallel_size,
        pipeline_parallel_size=profile.pipeline_parallel_size, quantization=profile.quantization or "",
        kv_cache_dtype=profile.kv_cache_dtype or "auto", enable_prefix_caching=profile.enable_prefix_caching,
        max_num_seqs=profile.max_num_seqs, enable_sleep_mode=profile.enable_sleep_mode, node_count=profile.node_count,
        distributed_backend=profile.distributed_backend, extra_flags=profile.extra_flags or "",
        extra_env=dict(profile.extra_env or {}))


def profile_argv(*, profile: ModelProfile, node: Node | None = None, port: int = 8000, host: str = "127.0.0.1",
                 gpu_memory_utilization: float | None = None, rank: multinode.Rank | None = None) -> list[str]:
    """The exact argv a server of this profile launches on `node` (never a shell string).

    Weights come from the node's cache (HF_HOME), which the launcher sets together with HF_HUB_OFFLINE=1.
    """
    executable = getattr(node, "tei_executable" if profile.engine == "tei" else "vllm_executable", "") or ""
    return engine_argv.serve_argv(profile_serve_spec(profile), executable=executable, host=host, port=port,
                                  gpu_memory_utilization=gpu_memory_utilization, rank=rank,
                                  hub_cache=str(settings.PORTAL_WEIGHTS_DIR / "hub"))


def profile_shown_argv(*, profile: ModelProfile, node: Node | None = None, port: int = 8000) -> list[str]:
    """The argv shown to people. A multi-node profile shows its leader's: with mp each follower adds --node-rank R and
    --headless; with ray the followers run `ray start --address` instead (engines/ray_cluster.py)."""
    rank = multinode.Rank(0, "LEADER_IP", 29501) if profile.node_count > 1 else None
    return profile_argv(profile=profile, node=node, port=port, rank=rank)


def profile_command_line(*, profile: ModelProfile, node: Node | None = None, port: int = 8000) -> str:
    """The argv shown to people, quoted so it can be pasted into a terminal."""
    return engine_argv.command_line(profile_shown_argv(profile=profile, node=node, port=port), profile.extra_env)
