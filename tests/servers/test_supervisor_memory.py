"""The memory a server measured, from vLLM's own start-up lines."""
import pytest

from servers import supervisor


def test_the_memory_figure_reads_both_wordings_of_the_weights_line():
    v033 = ["(EngineCore pid=1) INFO [gpu_model_runner.py:4202] Model loading took 15.2642 GiB memory and "
            "4.1 seconds", "(EngineCore pid=1) INFO [gpu_worker.py:376] Available KV cache memory: 10.00 GiB"]
    # vLLM 0.26.0 on an H100 (the tiny model's weights round to 0.0 GiB there; a real model's do not).
    v026 = ["(EngineCore pid=932) INFO 12-06 06:13:44 [model_runner.py:305] Model loading took 15.3 GiB and "
            "1.724362 seconds", "(EngineCore pid=932) INFO 12-06 06:13:49 [gpu_worker.py:560] Available KV cache "
            "memory: 23.46 GiB"]
    assert supervisor.measured_memory_gb(v033) == pytest.approx((15.2642 + 10.0) * 1.073741824, abs=0.01)
    assert supervisor.measured_memory_gb(v026) == pytest.approx((15.3 + 23.46) * 1.073741824, abs=0.01)
