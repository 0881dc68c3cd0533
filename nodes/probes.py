"""Host facts (psutil) and GPU facts (NVML, falling back to nvidia-smi). "No GPU" is a normal state."""
import logging
import os
from pathlib import Path

import psutil
from django.conf import settings

from nodes import processes

log = logging.getLogger(__name__)

GIB = 1024**3
SMI_FIELDS = ["index", "name", "uuid", "temperature.gpu", "power.draw", "utilization.gpu", "pstate",
              "memory.used", "memory.total"]


def host_facts() -> dict:
    vm = psutil.virtual_memory()
    swap = psutil.swap_memory()
    weights = _existing_dir(Path(settings.PORTAL_WEIGHTS_DIR))
    disk = psutil.disk_usage(str(weights))
    load1, _, _ = os.getloadavg()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count() or 1,
        "load1": round(load1, 2),
        "ram_used_gb": round((vm.total - vm.available) / GIB, 2),
        "ram_total_gb": round(vm.total / GIB, 2),
        "ram_percent": vm.percent,
        "swap_used_gb": round(swap.used / GIB, 2),
        "swap_total_gb": round(swap.total / GIB, 2),
        "disk_path": str(weights),
        "disk_free_gb": round(disk.free / GIB, 2),
        "disk_total_gb": round(disk.total / GIB, 2),
        "disk_percent": disk.percent,
    }


def _existing_dir(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def gpu_facts() -> list[dict]:
    """One dict per GPU. NVML first; nvidia-smi if NVML cannot load; [] when there is no GPU."""
    try:
        return nvml_gpus()
    except Exception as exc:  # noqa: BLE001 - pynvml raises many NVMLError kinds
        log.debug("NVML unavailable (%s); trying nvidia-smi", exc)
    return smi_gpus()


def _nvml_value(fn, *args, default=None):
    import pynvml

    try:
        return fn(*args)
    except pynvml.NVMLError:
        # Unified-memory GPUs (GB10) answer "Not Supported" for memory: that is a value, not an error.
        return default


def nvml_gpus() -> list[dict]:
    import pynvml

    pynvml.nvmlInit()
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append(nvml_device_facts(index, {
                "name": pynvml.nvmlDeviceGetName(handle),
                "uuid": _nvml_value(pynvml.nvmlDeviceGetUUID, handle, default=""),
                "temperature": _nvml_value(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU),
                "power_usage_mw": _nvml_value(pynvml.nvmlDeviceGetPowerUsage, handle),
                "utilization": _nvml_struct(_nvml_value(pynvml.nvmlDeviceGetUtilizationRates, handle)),
                "performance_state": _nvml_value(pynvml.nvmlDeviceGetPerformanceState, handle),
                "memory_info": _nvml_struct(_nvml_value(pynvml.nvmlDeviceGetMemoryInfo, handle)),
            }))
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _nvml_struct(value) -> dict | None:
    """A pynvml ctypes structure as a plain dict (None stays None)."""
    if value is None:
        return None
    return {field[0]: getattr(value, field[0]) for field in value._fields_}


def nvml_device_facts(index: int, raw: dict) -> dict:
    """Map what NVML returned for one device (values as pynvml gives them, None where it raised) to our facts.

    NVML reports milliwatts and bytes. Its `used` memory includes the driver's reservation,
    which nvidia-smi leaves out (an idle H200: NVML 615 MiB used, nvidia-smi 0 MiB).
    """
    name = raw.get("name") or ""
    mem, util, power, pstate = raw.get("memory_info"), raw.get("utilization"), raw.get("power_usage_mw"), \
        raw.get("performance_state")
    return {
        "index": index,
        "name": name.decode() if isinstance(name, bytes) else name,
        "uuid": raw.get("uuid") or "",
        "temperature_c": raw.get("temperature"),
        "power_w": round(power / 1000, 1) if power is not None else None,
        "utilization_pct": util["gpu"] if util is not None else None,
        "pstate": f"P{pstate}" if pstate is not None else None,
        "memory_used_gb": round(mem["used"] / GIB, 2) if mem is not None else None,
        "memory_total_gb": round(mem["total"] / GIB, 2) if mem is not None else None,
        # Unified-memory GPUs (GB10) answer "Not Supported" for memory: the planner asks torch instead.
        "unified_memory": mem is None,
        "source": "nvml",
    }


def smi_gpus() -> list[dict]:
    argv = [settings.PORTAL_NVIDIA_SMI, f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader,nounits"]
    code, out, err = processes.run_capture(argv, timeout=10)
    if code != 0:
        return []
    return parse_smi_csv(out)


def _num(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_smi_csv(text: str) -> list[dict]:
    gpus = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != len(SMI_FIELDS):
            continue
        row = dict(zip(SMI_FIELDS, cells, strict=True))
        used, total = _num(row["memory.used"]), _num(row["memory.total"])
        util = _num(row["utilization.gpu"])
        gpus.append({
            "index": int(row["index"]),
            "name": row["name"],
            "uuid": row["uuid"],
            "temperature_c": _num(row["temperature.gpu"]),
            "power_w": _num(row["power.draw"]),
            "utilization_pct": int(util) if util is not None else None,
            "pstate": row["pstate"],
            "memory_used_gb": round(used / 1024, 2) if used is not None else None,
            "memory_total_gb": round(total / 1024, 2) if total is not None else None,
            "unified_memory": total is None,
            "source": "nvidia-smi",
        })
    return gpus


# GB10 and other unified-memory GPUs: NVML says "Not Supported" for memory, so ask CUDA itself, in a
# short child process of the engine's Python (the portal never imports torch).
UNIFIED_PROBE = "import torch; free, total = torch.cuda.mem_get_info(0); print(free, total)"
_unified_cache: dict[str, tuple[float, tuple[float, float] | None]] = {}


def unified_memory_gb(*, python: str, env: dict, max_age_s: float = 60.0) -> tuple[float, float] | None:
    """(free GB, total GB) from torch.cuda.mem_get_info in the engine's Python; cached for max_age_s."""
    import time

    cached = _unified_cache.get(python)
    if cached and time.monotonic() - cached[0] < max_age_s:
        return cached[1]
    code, out, err = processes.run_capture([python, "-c", UNIFIED_PROBE], timeout=120, env=env)
    value = None
    if code == 0:
        try:
            free, total = (int(x) for x in out.split()[-2:])
            value = (round(free / GIB, 2), round(total / GIB, 2))
        except ValueError:
            log.warning("unexpected answer of the unified-memory probe: %r", out[-200:])
    else:
        log.warning("unified-memory probe with %s failed: %s", python, err.strip()[-300:])
    _unified_cache[python] = (time.monotonic(), value)
    return value


def fill_unified_memory(gpus: list[dict], *, python: str | None, env: dict) -> list[dict]:
    """Give unified-memory GPUs the memory figures NVML could not."""
    if not python or not any(g.get("unified_memory") for g in gpus):
        return gpus
    figures = unified_memory_gb(python=python, env=env)
    if figures is None:
        return gpus
    free, total = figures
    for gpu in gpus:
        if gpu.get("unified_memory"):
            gpu.update(memory_free_gb=free, memory_total_gb=total, memory_used_gb=round(total - free, 2),
                       memory_source="torch.cuda.mem_get_info")
    return gpus
