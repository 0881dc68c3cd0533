"""The curated catalog (models_registry/catalog.yaml) and adding an entry as a profile."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from accounts.models import User
from models_registry.models import ModelProfile
from models_registry.services.profiles import PROFILE_FIELDS, profile_create
from sparkportal.exceptions import NotFound, ValidationFailed

CATALOG_PATH = Path(__file__).resolve().parent.parent / "catalog.yaml"
CATALOG_ONLY = ("size_gb", "arch")


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> tuple[dict[str, Any], ...]:
    entries = yaml.safe_load(Path(path).read_text()) or []
    if not isinstance(entries, list):
        raise ValueError(f"{path} must be a YAML list of entries")
    return tuple(entries)


def catalog_entries() -> list[dict[str, Any]]:
    """Entries as written, re-read when the file changes (it is meant to be edited)."""
    return [dict(e) for e in _load(str(CATALOG_PATH), CATALOG_PATH.stat().st_mtime)]


def catalog_entry(name: str) -> dict[str, Any]:
    for entry in catalog_entries():
        if entry.get("name") == name:
            return entry
    names = ", ".join(e["name"] for e in catalog_entries())
    raise NotFound(f"No catalog entry {name!r}: the catalog has {names}.")


def catalog_entry_for_repo(repo_id: str) -> dict[str, Any] | None:
    for entry in catalog_entries():
        if entry.get("repo_id", "").lower() == (repo_id or "").lower():
            return entry
    return None


def catalog_add(*, name: str, actor: User | None, profile_name: str | None = None,
                ip: str | None = None) -> ModelProfile:
    """Turn a catalog entry into a profile in one step (named after the entry unless told otherwise)."""
    entry = catalog_entry(name)
    data = {k: v for k, v in entry.items() if k in PROFILE_FIELDS}
    data["name"] = profile_name or entry["name"]
    data["catalog_name"] = entry["name"]
    data.setdefault("source", ModelProfile.Source.HUB)
    if ModelProfile.objects.filter(name=data["name"]).exists():
        raise ValidationFailed(f"A profile named {data['name']!r} already exists (added from the catalog before?): "
                               "open it, or add the entry under another name.", code="duplicate")
    return profile_create(actor=actor, data=data, ip=ip)


def catalog_rows() -> list[dict[str, Any]]:
    """Entries with what the catalog page shows: size on disk, estimated memory, already added or not."""
    from models_registry.services.memory import memory_estimate

    added = set(ModelProfile.objects.exclude(catalog_name="").values_list("catalog_name", flat=True))
    rows = []
    for entry in catalog_entries():
        draft = ModelProfile(**{k: v for k, v in entry.items() if k in PROFILE_FIELDS})
        estimate = memory_estimate(profile=draft)
        rows.append({**entry, "added": entry["name"] in added,
                     "estimated_memory_gb": round(estimate.total_bytes / 1e9, 1) if estimate.total_bytes else None,
                     "kv_gb": round(estimate.kv_bytes_max_model_len / 1e9, 2)
                     if estimate.kv_bytes_max_model_len is not None else None})
    return rows
