"""Why an engine failed to start, in plain words, from the last lines of its log.

The patterns are the lines vLLM 0.33 prints for each cause (shared vLLM reference, section 4),
the field notes' wheel/library failures, and what real vLLM 0.26.0 printed on an H100 (a missing
flashinfer wheel). The first matching rule wins; the order puts root
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
    # vLLM 0.26's V2 sampler imports flashinfer unguarded; the API server then says only "Failed core proc(s): {}".
    ("missing_module", re.compile(r"ModuleNotFoundError: No module named '(?P<detail>[\w.]+)'"),
     "The engine's Python lacks the module {detail}: install it into the engine's environment."),
    ("engine_failed", re.compile(r"Engine core initialization failed"),
     "The engine process failed during initialization; see the log lines above the error."),
]


# Missing modules with a way round them: the message names that way instead of the generic one.
MODULE_HINTS = {
    "flashinfer": "The engine's Python lacks flashinfer, which vLLM's sampler imports at start: set "
                  "VLLM_USE_FLASHINFER_SAMPLER=0 in the node's or profile's environment, or install "
                  "flashinfer-python into the engine's environment.",
}


def classify(log_tail: str, *, exit_code: int | None = None) -> Failure:
    for code, pattern, template in RULES:
        match = pattern.search(log_tail)
        if match:
            detail = (match.groupdict().get("detail") or "").strip()
            if code == "missing_module" and detail.split(".")[0] in MODULE_HINTS:
                return Failure(code, MODULE_HINTS[detail.split(".")[0]])
            return Failure(code, template.format(detail=detail) if "{detail}" in template else template)
    if exit_code is not None:
        return Failure("exited", f"The engine exited with status {exit_code} before it became ready; see the log.")
    return Failure("exited", "The engine process exited; see the last log lines.")
