"""Why an engine failed to start, in plain words, from the last lines of its log.

The patterns are the lines vLLM 0.33 prints for each cause (shared vLLM reference, section 4)
and the field notes' wheel/library failures. The first matching rule wins; the order puts root
causes before the wrapper ("Engine core initialization failed") that follows them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    code: str
    message: str


RULES: list[tuple[str, re.Pattern, str]] = [
    ("port_in_use", re.compile(r"Address already in use|\[Errno 98\]"),
     "The port is already in use by another process: pick another port or stop what listens there."),
    ("unknown_flag", re.compile(r"error: unrecognized arguments: (?P<detail>.+)"),
     "vLLM refused an unknown flag ({detail}): fix the profile's extra flags."),
    ("unknown_flag", re.compile(r"error: argument (?P<detail>.+)"),
     "vLLM refused a flag value ({detail}): fix the profile."),
    ("missing_library", re.compile(r"(?P<detail>\S+\.so[.\d]*): cannot open shared object file"),
     "A shared library is missing ({detail}): set the node's LD_LIBRARY_PATH prefix to the folders that "
     "hold the CUDA libraries."),
    ("wrong_wheel", re.compile(r"undefined symbol: (?P<detail>\w+)|Illegal instruction"),
     "The engine's torch/vLLM wheel does not match this machine's CUDA or CPU (undefined symbol {detail}): "
     "install the wheel built for this architecture and CUDA version."),
    ("oom", re.compile(r"CUDA out of memory|OutOfMemoryError|not enough GPU memory"),
     "CUDA out of memory while loading the model: lower gpu_memory_utilization of other servers, stop one, "
     "or use a smaller or quantized model."),
    ("oom", re.compile(r"Free memory on device (?P<detail>\S+ \([^)]*\)) on startup is less than desired"),
     "Not enough free GPU memory at startup ({detail}): stop another server or lower gpu_memory_utilization."),
    ("kv_cache", re.compile(r"No available memory for the cache blocks"),
     "No memory was left for the KV cache after loading the weights: raise gpu_memory_utilization or lower "
     "max_model_len."),
    ("kv_cache", re.compile(r"estimated maximum model length is (?P<detail>\d+)"),
     "The KV cache cannot hold one request of max_model_len: lower max_model_len to at most {detail} or raise "
     "gpu_memory_utilization."),
    ("too_many_gpus", re.compile(r"World size \((?P<detail>\d+)\) is larger than the number of available GPUs"),
     "The profile asks for {detail} GPUs, more than this node has visible: lower tensor/pipeline parallel size."),
    ("engine_failed", re.compile(r"Engine core initialization failed"),
     "The engine process failed during initialization; see the log lines above the error."),
]


def classify(log_tail: str, *, exit_code: int | None = None) -> Failure:
    for code, pattern, template in RULES:
        match = pattern.search(log_tail)
        if match:
            detail = (match.groupdict().get("detail") or "").strip()
            return Failure(code, template.format(detail=detail) if "{detail}" in template else template)
    if exit_code is not None:
        return Failure("exited", f"The engine exited with status {exit_code} before it became ready; see the log.")
    return Failure("exited", "The engine process exited; see the last log lines.")
