"""Checks on where a profile's weights come from. Each failure says what is wrong and what to write instead.

Engine flags and environment are checked by `engines.flags`."""
from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")

def check_repo_id(repo_id: str) -> str | None:
    """None when fine, else the message."""
    text = repo_id or ""
    if not text.strip():
        return "Give the Hugging Face repo id as owner/name, e.g. Qwen/Qwen2.5-Coder-32B-Instruct."
    if text != text.strip() or any(c.isspace() for c in text):
        return f"Repo id {text!r} contains spaces: write it as owner/name without spaces."
    if "://" in text or text.startswith("huggingface.co") or text.startswith("www."):
        return (f"Repo id {text!r} is a URL: paste only the owner/name part "
                "(e.g. Qwen/Qwen2.5-Coder-32B-Instruct).")
    if text.startswith(("/", "~", ".")) or ".." in text:
        return (f"Repo id {text!r} looks like a file path: a repo id is owner/name; for weights in a folder "
                "choose the source 'Local folder'.")
    if not REPO_ID_RE.match(text) or "--" in text:
        return (f"Repo id {text!r} is not owner/name: use letters, digits, '-', '_' and '.' with exactly one '/', "
                "e.g. google/gemma-3-4b-it.")
    return None


def check_revision(revision: str) -> str | None:
    if not revision:
        return None
    if ".." in revision or not REVISION_RE.match(revision):
        return f"Revision {revision!r} is not a branch, tag or commit: use e.g. main or a 40-character commit hash."
    return None


def check_local_path(path: str) -> str | None:
    roots = [Path(r) for r in settings.PORTAL_MODEL_ROOTS]
    roots_text = ", ".join(str(r) for r in roots)
    if not path or not path.strip():
        return f"Give the folder that holds the weights, inside one of the model roots ({roots_text})."
    candidate = Path(path)
    if not candidate.is_absolute():
        return f"Local folder {path!r} must be an absolute path inside one of the model roots ({roots_text})."
    resolved = candidate.resolve()
    if not any(resolved == root or root in resolved.parents for root in roots):
        return (f"Local folder {path} is outside the model roots ({roots_text}): move the weights under one of "
                "them, or add its folder to PORTAL_MODEL_ROOTS.")
    return None
