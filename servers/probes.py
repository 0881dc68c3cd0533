"""Host facts (psutil) and GPU facts (NVML, falling back to nvidia-smi). "No GPU" is a normal state."""
import logging
import os
from pathlib import Path

import psutil
from django.conf import settings

from servers import processes

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
            mem = _nvml_value(pynvml.nvmlDeviceGetMemoryInfo, handle)
            util = _nvml_value(pynvml.nvmlDeviceGetUtilizationRates, handle)
            power = _nvml_value(pynvml.nvmlDeviceGetPowerUsage, handle)
            pstate = _nvml_value(pynvml.nvmlDeviceGetPerformanceState, handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append({
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else name,
                "uuid": _nvml_value(pynvml.nvmlDeviceGetUUID, handle, default=""),
                "temperature_c": _nvml_value(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU),
                "power_w": round(power / 1000, 1) if power is not None else None,
                "utilization_pct": util.gpu if util is not None else None,
                "pstate": f"P{pstate}" if pstate is not None else None,
                "memory_used_gb": round(mem.used / GIB, 2) if mem is not None else None,
                "memory_total_gb": round(mem.total / GIB, 2) if mem is not None else None,
                "unified_memory": mem is None,
                "source": "nvml",
            })
        return gpus
    finally:
        pynvml.nvmlShutdown()


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
