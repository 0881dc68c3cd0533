"""Checks on profile input. Each failure says what is wrong and what to write instead."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from django.conf import settings

from models_registry.engine_flags import TEI_FLAGS, VLLM_FLAGS

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DTYPES = ("auto", "bfloat16", "float16", "half", "float32", "float")
KV_CACHE_DTYPES = ("auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_ds_mla", "fp8_inc", "nvfp4")
SHELL_CHARS = (";", "|", "&", "`", "$(", ">", "<", "\n")

# Flags the profile's own fields set: a second copy in extra flags would silently win or clash.
OWNED_FLAGS = {
    "vllm": {"--model", "--port", "--host", "--served-model-name", "--dtype", "--max-model-len",
             "--gpu-memory-utilization", "--device-memory-utilization", "--tensor-parallel-size", "-tp",
             "--pipeline-parallel-size", "-pp", "--quantization", "-q", "--kv-cache-dtype", "--enable-prefix-caching",
             "--disable-prefix-caching", "--max-num-seqs", "--revision"},
    "tei": {"--model-id", "--port", "-p", "--hostname", "--served-model-name", "--dtype", "--revision",
            "--huggingface-hub-cache", "--hf-token"},
}
FIELD_OF_FLAG = {"--gpu-memory-utilization": "gpu_memory_utilization", "--max-model-len": "max_model_len",
                 "--served-model-name": "served_model_name", "--tensor-parallel-size": "tensor_parallel_size",
                 "--pipeline-parallel-size": "pipeline_parallel_size", "--max-num-seqs": "max_num_seqs",
                 "--kv-cache-dtype": "kv_cache_dtype", "--enable-prefix-caching": "enable_prefix_caching",
                 "--disable-prefix-caching": "enable_prefix_caching"}


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


def split_flags(engine: str, text: str) -> tuple[list[str], list[str]]:
    """Split extra flags like a shell would (they never reach one) and return (argv, problems)."""
    if not text or not text.strip():
        return [], []
    bad = sorted({c for c in SHELL_CHARS if c in text})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return [], [f"Extra flags contain shell syntax ({shown}): flags are passed to the engine as arguments, "
                    "never to a shell, so commands cannot be chained. Write only engine flags, "
                    "e.g. --enable-auto-tool-choice --tool-call-parser hermes."]
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        return [], [f"Extra flags could not be split ({exc}): close the quotes."]
    known = VLLM_FLAGS if engine == "vllm" else TEI_FLAGS
    engine_name = "vLLM" if engine == "vllm" else "TEI"
    problems = []
    unknown, owned = [], []
    for token in argv:
        if not token.startswith("-") or token in ("-", "--") or _is_number(token):
            continue  # a value of the flag before it
        flag = token.split("=", 1)[0]
        if flag in OWNED_FLAGS.get(engine, set()):
            owned.append(flag)
        elif flag not in known:
            unknown.append(flag)
    if unknown:
        problems.append(f"Unknown {engine_name} flag(s): {', '.join(unknown)}. Check the spelling against "
                        f"`{'vllm serve --help=all' if engine == 'vllm' else 'text-embeddings-router --help'}`.")
    if owned:
        fields = ", ".join(sorted({FIELD_OF_FLAG.get(f, f.lstrip('-').replace('-', '_')) for f in owned}))
        problems.append(f"Extra flags repeat {', '.join(owned)}, which the profile sets itself: use the field(s) "
                        f"{fields} instead.")
    return argv, problems


def check_extra_env(env) -> str | None:
    if not isinstance(env, dict):
        return 'Extra environment must be a JSON object of names to values, e.g. {"VLLM_USE_V1": "1"}.'
    bad = [k for k in env if not isinstance(k, str) or not ENV_NAME_RE.match(k)]
    if bad:
        return f"Environment names {bad!r} are not valid: use letters, digits and '_', not starting with a digit."
    nonstr = [k for k, v in env.items() if not isinstance(v, str | int | float)]
    if nonstr:
        return f"Environment values of {nonstr!r} must be text or numbers."
    return None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
