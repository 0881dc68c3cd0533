"""Memory estimate of a profile: weights plus KV cache, against a node's memory."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.utils import timezone

from models_registry import clients
from models_registry.models import ModelProfile, RepoSnapshot
from nodes.models import Node

GB = 1e9
WEIGHT_SUFFIXES = (".safetensors",)
FALLBACK_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth")
DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


@dataclass
class MemoryEstimate:
    weights_bytes: int | None = None
    kv_bytes_per_token: int | None = None
    max_model_len: int = 0
    max_num_seqs: int = 1
    kv_bytes_max_model_len: int | None = None
    kv_bytes_concurrent: int | None = None
    total_bytes: int | None = None
    node_memory_bytes: int | None = None
    budget_bytes: int | None = None
    fits: bool | None = None
    weights_source: str = ""  # "disk" | "hub" | "catalog" | ""
    config_source: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("weights_bytes", "kv_bytes_max_model_len", "kv_bytes_concurrent", "total_bytes",
                    "node_memory_bytes", "budget_bytes"):
            value = data[key]
            data[key.replace("_bytes", "_gb")] = round(value / GB, 2) if value is not None else None
        return data


def memory_estimate(*, profile: ModelProfile, node: Node | None = None, fetch: bool = False) -> MemoryEstimate:
    """Estimate what serving `profile` needs, from config.json and weight file sizes.

    Steps: 1. find config.json and weight sizes — on disk (the node's hub cache or the profile's local
    folder), else what the hub said earlier (RepoSnapshot), else, with fetch=True, ask the hub now (a
    network call: only from a worker or the command line), else the catalog's figures.
    2. KV bytes per token = attention layers x KV heads x head dim x 2 (K and V) x KV dtype bytes
    (multi-head latent attention: layers x (kv_lora_rank + qk_rope_head_dim) x dtype bytes; TEI: 0).
    3. Compare with the node's GPU memory (host RAM on unified-memory GPUs).

    Returns a MemoryEstimate; `.as_dict()` adds *_gb twins of every *_bytes field. Fields:
      weights_bytes            sum of the weight files (None if unknown)
      kv_bytes_per_token       KV cache bytes one token costs (None if config.json is unknown)
      max_model_len, max_num_seqs   as used for the figures below (max_num_seqs defaults to 1)
      kv_bytes_max_model_len   KV for one sequence of max_model_len tokens
      kv_bytes_concurrent      KV for max_num_seqs such sequences at once
      total_bytes              weights + kv_bytes_max_model_len: the least the engine needs to start
      node_memory_bytes        the node's GPU memory (None without a node or GPU facts)
      budget_bytes             gpu_memory_utilization x node_memory_bytes: what vLLM will take
      fits                     total_bytes <= budget_bytes (None when either is unknown)
      weights_source, config_source   "disk" | "hub" | "catalog" | "" (unknown)
      notes                    plain-words remarks (what is unknown and why)
    The admission check of servers compares total_bytes with free memory and budget_bytes with the budget.
    """
    estimate = MemoryEstimate(max_model_len=profile.max_model_len or 0, max_num_seqs=profile.max_num_seqs or 1)
    config, weights = _from_disk(profile)
    if config:
        estimate.config_source = "disk"
    if weights is not None:
        estimate.weights_bytes, estimate.weights_source = weights, "disk"
    if profile.source == ModelProfile.Source.HUB and (not config or weights is None):
        snap = _hub_snapshot(profile, node=node, fetch=fetch)
        if snap is not None:
            if not config and snap.config:
                config, estimate.config_source = snap.config, "hub"
            if weights is None and snap.files:
                estimate.weights_bytes, estimate.weights_source = _weight_sum(snap.files), "hub"
    if not config or estimate.weights_bytes is None:
        _from_catalog(profile, estimate, config_known=bool(config))
    if config:
        estimate.kv_bytes_per_token = kv_bytes_per_token(config, profile=profile)
    elif estimate.kv_bytes_per_token is None:
        estimate.notes.append("config.json is unknown: download the weights or look the repo up on the hub.")
    if profile.engine == ModelProfile.Engine.TEI:
        estimate.kv_bytes_per_token = 0
    if estimate.kv_bytes_per_token is not None:
        estimate.kv_bytes_max_model_len = estimate.kv_bytes_per_token * estimate.max_model_len
        estimate.kv_bytes_concurrent = estimate.kv_bytes_max_model_len * estimate.max_num_seqs
    if estimate.weights_bytes is not None and estimate.kv_bytes_max_model_len is not None:
        estimate.total_bytes = estimate.weights_bytes + estimate.kv_bytes_max_model_len
    if estimate.weights_bytes is None:
        estimate.notes.append("Weight sizes are unknown: download the weights or look the repo up on the hub.")
    estimate.node_memory_bytes = node_memory_bytes(node)
    if estimate.node_memory_bytes:
        estimate.budget_bytes = int(estimate.node_memory_bytes * profile.gpu_memory_utilization)
        if estimate.total_bytes is not None:
            estimate.fits = estimate.total_bytes <= estimate.budget_bytes
    return estimate


def kv_bytes_per_token(config: dict, *, profile: ModelProfile) -> int:
    cfg = config.get("text_config") or config.get("llm_config") or config
    layers = int(cfg.get("num_hidden_layers") or cfg.get("num_layers") or cfg.get("n_layer") or 0)
    if cfg.get("attention_layers"):
        layers = int(cfg["attention_layers"])
    elif isinstance(cfg.get("layer_types"), list):
        # Hybrid models (linear attention / mamba layers) keep a KV cache only in attention layers.
        layers = sum(1 for t in cfg["layer_types"] if "attention" in str(t) and "linear" not in str(t))
    elif cfg.get("full_attention_interval"):
        layers = layers // int(cfg["full_attention_interval"])
    dtype_bytes = _kv_dtype_bytes(profile, cfg)
    if cfg.get("kv_lora_rank"):
        per_layer = (int(cfg["kv_lora_rank"]) + int(cfg.get("qk_rope_head_dim") or 0)) * dtype_bytes
        return layers * per_layer
    heads = int(cfg.get("num_attention_heads") or cfg.get("n_head") or 1)
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or (int(cfg.get("hidden_size") or 0) // heads))
    return layers * kv_heads * head_dim * 2 * dtype_bytes


def _kv_dtype_bytes(profile: ModelProfile, cfg: dict) -> int:
    kv = (profile.kv_cache_dtype or "auto").lower()
    if kv.startswith("fp8") or kv.startswith("int8"):
        return 1
    if kv != "auto":
        return DTYPE_BYTES.get(kv, 2)
    dtype = profile.dtype if profile.dtype != "auto" else str(cfg.get("torch_dtype") or cfg.get("dtype") or "")
    return DTYPE_BYTES.get(dtype, 2)


def node_memory_bytes(node: Node) -> int | None:
    if node is None:
        return None
    gpus = node.gpu_facts or []
    total = sum(g.get("memory_total_gb") or 0 for g in gpus)
    if not total and any(g.get("unified_memory") for g in gpus):
        total = (node.host_facts or {}).get("ram_total_gb") or 0  # GB10: GPU and CPU share the RAM
    return int(total * 1024**3) if total else None


def _weight_sum(files: list[dict]) -> int:
    sizes = [f["size"] for f in files if f["path"].endswith(WEIGHT_SUFFIXES)]
    if not sizes:
        sizes = [f["size"] for f in files if f["path"].endswith(FALLBACK_WEIGHT_SUFFIXES)
                 and not f["path"].startswith("original/")]
    return sum(sizes)


def _files_in(folder: Path) -> list[dict]:
    return [{"path": str(p.relative_to(folder)), "size": p.stat().st_size}
            for p in folder.rglob("*") if p.is_file()]


def _from_disk(profile: ModelProfile) -> tuple[dict, int | None]:
    if profile.source == ModelProfile.Source.LOCAL:
        folder = Path(profile.local_path)
    else:
        repo = clients.repo_folder(profile.repo_id)
        ref = repo / "refs" / (profile.revision or "main")
        commit = ref.read_text().strip() if ref.exists() else profile.revision
        folder = repo / "snapshots" / commit
    if not folder.is_dir():
        return {}, None
    files = _files_in(folder)
    weights = _weight_sum(files) if files else None
    return clients.local_config(folder), (weights or None)


def _hub_snapshot(profile: ModelProfile, *, node: Node, fetch: bool) -> RepoSnapshot | None:
    snap = RepoSnapshot.objects.filter(repo_id=profile.repo_id, revision=profile.revision or "main").first()
    if (snap is not None and snap.files) or not fetch:
        return snap
    return repo_snapshot_fetch(repo_id=profile.repo_id, revision=profile.revision or "main", node=node)


def repo_snapshot_fetch(*, repo_id: str, revision: str, node: Node | None = None) -> RepoSnapshot:
    """Ask the hub now, in this process, and remember the answer (raises HubError). For workers and the
    command line; web requests queue a look-up instead (services.repo_lookup_request)."""
    from models_registry.services.lookups import ask_hub
    from models_registry.services.tokens import hub_token_reveal

    commit, files, config = ask_hub(repo_id=repo_id, revision=revision, token=hub_token_reveal(node=node))
    snap, _ = RepoSnapshot.objects.update_or_create(
        repo_id=repo_id, revision=revision,
        defaults={"commit": commit, "files": files, "config": config, "lookup_status": "done",
                  "lookup_error": "", "lookup_error_code": "", "looked_up_at": timezone.now()})
    return snap


def _from_catalog(profile: ModelProfile, estimate: MemoryEstimate, *, config_known: bool) -> None:
    from models_registry.services.catalog import catalog_entry_for_repo

    entry = catalog_entry_for_repo(profile.repo_id) if profile.source == ModelProfile.Source.HUB else None
    if entry is None:
        return
    if estimate.weights_bytes is None and entry.get("size_gb"):
        estimate.weights_bytes, estimate.weights_source = int(float(entry["size_gb"]) * GB), "catalog"
    if not config_known and entry.get("arch"):
        estimate.kv_bytes_per_token = kv_bytes_per_token(dict(entry["arch"]), profile=profile)
        estimate.config_source = "catalog"
