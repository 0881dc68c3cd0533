"""Which engine versions the portal supports, and how a node learns the version it has.

vLLM 0.26 up to 0.33 (the flag table in `vllm_serve_flags.json` and the interface facts the stand-ins follow);
TEI 1.9. Older or newer engines still start, and the start page says the version is outside what was checked.

Verified against a real vLLM 0.26.0 on an NVIDIA H100 (torch 2.11.0+cu130; perf/real_vllm/ drove the portal's
node side): this probe reads 0.26.0; start through the supervisor, ready, the marker on all three processes
(API server, resource tracker, EngineCore: one process group) with SPT_NOENV=1; the weights line "Model loading
took X GiB and Y seconds" (0.33: "X GiB memory and"); every metric family the portal reads (0.26 lacks 0.33's
admission_rejections, prompt_tokens_cached_by_source and request_num_preemptions); a streaming chat through the
gateway with usage; `vllm bench serve` JSON (no latencies/queue_times without --save-detailed); stop by SIGTERM
to the group; after a SIGKILL of the API server alone the EngineCore and tracker survive until the reconcile
kills them by marker; a start without the flashinfer wheel dies unless VLLM_USE_FLASHINFER_SAMPLER=0; sleep and
wake answer (the portal has no sleeping state yet). The stand-ins play 0.26 with FAKE_VLLM_VERSION=0.26.0.
"""
from __future__ import annotations

import re

SUPPORTED: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "vllm": ((0, 26), (0, 33)),
    "tei": ((1, 9), (1, 9)),
}

# `vllm --version` needs a GPU to start; the package metadata in the engine's own Python does not.
VLLM_VERSION_CODE = "import importlib.metadata as m; print(m.version('vllm'))"


def probe_argv(engine: str, *, executable: str, python: str | None) -> list[str] | None:
    """The short command that prints the engine's version (None when the engine's Python is unknown)."""
    if engine == "tei":
        return [executable, "--version"]  # the router is one static binary
    return [python, "-c", VLLM_VERSION_CODE] if python else None


def parse_probe_output(engine: str, output: str) -> str:
    words = output.split()
    if not words:
        return ""
    return words[-1] if engine == "tei" else output.strip().splitlines()[-1].strip()


def major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"^v?(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def support_note(engine: str, version: str) -> str:
    """Empty when the version is within what the portal supports, else a sentence saying so."""
    found = major_minor(version)
    low, high = SUPPORTED.get(engine, ((0, 0), (999, 0)))
    if found is None or low <= found <= high:
        return ""
    name = "vLLM" if engine == "vllm" else "TEI"
    return (f"{name} {version} is outside the versions the portal was checked with "
            f"({low[0]}.{low[1]} to {high[0]}.{high[1]}): flags and metrics may differ.")
