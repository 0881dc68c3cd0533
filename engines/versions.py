"""Which engine versions the portal supports, and how a node learns the version it has.

vLLM 0.26 (run for real on an H100: processes, metrics, bench JSON, sleep mode) up to 0.33 (the flag table
in `vllm_serve_flags.json` and the interface facts the stand-ins follow); TEI 1.9. Older or newer engines
still start, and the start page says the version is outside what was checked.
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
