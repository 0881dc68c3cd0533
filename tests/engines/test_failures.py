"""The failure classifier on what real engines printed."""
from pathlib import Path

import pytest

from engines import failures

REAL_026 = Path(__file__).resolve().parents[1] / "fixtures" / "vllm-0.26"


def test_a_missing_flashinfer_in_the_real_026_log_says_how_to_avoid_it():
    # The real log ends with the API server's generic "Engine core initialization failed ... {}".
    log = (REAL_026 / "flashinfer-fail.serve.log").read_text()
    assert log.rstrip().endswith("Failed core proc(s): {}")
    failure = failures.classify(log)
    assert failure.code == "missing_module"
    assert "VLLM_USE_FLASHINFER_SAMPLER=0" in failure.message and "flashinfer-python" in failure.message
    assert "node's or profile's environment" in failure.message


@pytest.mark.parametrize(("line", "detail"), [
    ("ModuleNotFoundError: No module named 'flashinfer.sampling'", "flashinfer"),
    ("ModuleNotFoundError: No module named 'triton_kernels'", "triton_kernels"),
])
def test_a_missing_module_names_it(line, detail):
    failure = failures.classify(f"INFO loading\n{line}\nRuntimeError: Engine core initialization failed.\n")
    assert failure.code == "missing_module" and detail in failure.message


def test_a_root_cause_still_wins_over_a_module_note():
    log = "ModuleNotFoundError: No module named 'x'\ntorch.OutOfMemoryError: CUDA out of memory.\n"
    assert failures.classify(log).code == "oom"
