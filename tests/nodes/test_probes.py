"""GPU probes on output captured from a real NVIDIA H200 (tests/fixtures/gpu/README.md)."""
import json
from pathlib import Path

from nodes import probes

GPU = Path(__file__).resolve().parent.parent / "fixtures" / "gpu"
H200_UUID = "GPU-5112be9c-77a5-cf91-2331-ad9b7cf2b6e3"


def test_nvidia_smi_csv_of_a_real_h200_parses():
    [gpu] = probes.parse_smi_csv((GPU / "h200_smi_query.csv").read_text())
    assert gpu == {
        "index": 0, "name": "NVIDIA H200", "uuid": H200_UUID, "temperature_c": 39.0, "power_w": 124.24,
        "utilization_pct": 0, "pstate": "P0", "memory_used_gb": 0.0, "memory_total_gb": 140.4,
        "unified_memory": False, "source": "nvidia-smi",
    }


def test_the_query_fields_are_those_of_the_captured_header():
    header = (GPU / "h200_smi_query_header.csv").read_text().splitlines()[0]
    names = [cell.strip().split(" [")[0] for cell in header.split(",")]
    assert names == probes.SMI_FIELDS


def test_nvml_values_of_a_real_h200_map_to_the_same_facts_as_nvidia_smi():
    captured = json.loads((GPU / "h200_nvml.json").read_text())
    [device] = captured["devices"]
    gpu = probes.nvml_device_facts(device["index"], device)
    assert gpu == {
        "index": 0, "name": "NVIDIA H200", "uuid": H200_UUID, "temperature_c": 38, "power_w": 80.8,
        "utilization_pct": 0, "pstate": "P0", "memory_used_gb": 0.6, "memory_total_gb": 140.4,
        "unified_memory": False, "source": "nvml",
    }
    [smi] = probes.parse_smi_csv((GPU / "h200_smi_query.csv").read_text())
    assert (gpu["name"], gpu["uuid"], gpu["memory_total_gb"]) == (smi["name"], smi["uuid"], smi["memory_total_gb"])


def test_nvml_on_a_unified_memory_gpu_reports_unified_memory():
    # GB10: NVML raises NVMLError_NotSupported for memory, which the reader turns into None.
    gpu = probes.nvml_device_facts(0, {"name": b"NVIDIA GB10", "uuid": "GPU-x", "temperature": 47,
                                       "power_usage_mw": 11850, "utilization": {"gpu": 3, "memory": 0},
                                       "performance_state": 0, "memory_info": None})
    assert gpu["unified_memory"] is True
    assert gpu["memory_used_gb"] is None and gpu["memory_total_gb"] is None
    assert gpu["name"] == "NVIDIA GB10" and gpu["power_w"] == 11.8 and gpu["utilization_pct"] == 3


def test_nvidia_smi_on_a_unified_memory_gpu_reports_unified_memory():
    first, second = probes.parse_smi_csv((GPU / "gb10_unified_smi_query.csv").read_text())
    assert first["unified_memory"] is True and first["memory_total_gb"] is None and first["memory_used_gb"] is None
    assert first["power_w"] == 11.85 and first["utilization_pct"] == 3 and first["temperature_c"] == 47
    # "[Not Supported]" reads like "[N/A]"; a missing power reading is None, not an error.
    assert second["unified_memory"] is True and second["power_w"] is None and second["pstate"] == "P8"


def test_nvidia_smi_noise_lines_are_skipped():
    text = "No devices were found\n" + (GPU / "h200_smi_query.csv").read_text()
    assert [g["uuid"] for g in probes.parse_smi_csv(text)] == [H200_UUID]
