"""Server logs: tail and search, copy-truncate rotation, and the pump's batched live events."""
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from servers import events, logs


def test_tail_and_search_read_the_end_of_a_large_file(tmp_path):
    path = tmp_path / "server-1.log"
    path.write_text("".join(f"line {i}{' ERROR' if i % 1000 == 0 else ''}\n" for i in range(50000)))
    assert logs.tail(path, 3) == ["line 49997", "line 49998", "line 49999"]
    hits = logs.search(path, "error")
    assert hits[0] == (1, "line 0 ERROR") and len(hits) == 50


@pytest.mark.django_db
def test_the_pump_sends_new_lines_in_batches_and_follows_a_rotation(settings, tmp_path):
    settings.PORTAL_LOG_DIR = tmp_path
    settings.PORTAL_SERVER_LOG_MAX_BYTES = 10_000
    settings.PORTAL_SERVER_LOG_BACKUPS = 2
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.log_group(5), channel)
    path = logs.log_path(5)
    path.write_text("".join(f"first {i}\n" for i in range(100)) + "partial")
    pump = logs.LogPump(node_name="n")
    pump.offsets[5] = 0

    assert pump.pump_once(5) == 100  # the unfinished last line waits for its newline
    with open(path, "a") as fh:
        fh.write(" line\n" + "".join(f"second {i}\n" for i in range(1000)))
    assert pump.pump_once(5) == 1001
    assert path.stat().st_size == 0 and path.with_name("server-5.log.1").exists()  # rotated past 10 kB
    with open(path, "a") as fh:
        fh.write("after rotation\n")
    assert pump.pump_once(5) == 1

    async def receive(n: int) -> list:
        return [await layer.receive(channel) for _ in range(n)]

    first, second, third = [m["data"]["lines"] for m in async_to_sync(receive)(3)]
    assert first[0] == "first 0" and first[-1] == "first 99" and len(first) == 100
    assert second[0] == "partial line" and second[-1] == "second 999" and len(second) == 1001
    assert third == ["after rotation"]
    async_to_sync(layer.group_discard)(events.log_group(5), channel)


def test_unified_memory_comes_from_the_engines_python(tmp_path):
    """GB10: NVML has no memory figures; torch.cuda.mem_get_info in the engine's Python has them."""
    from nodes import probes

    python = tmp_path / "python"  # stands in for the engine venv's python with torch and CUDA
    python.write_text("#!/bin/sh\necho 12884901888 130459631616\n")
    python.chmod(0o755)
    gpus = [{"index": 0, "name": "NVIDIA GB10", "unified_memory": True, "memory_total_gb": None}]
    probes.fill_unified_memory(gpus, python=str(python), env={"PATH": "/usr/bin:/bin"})
    assert gpus[0]["memory_free_gb"] == 12.0 and gpus[0]["memory_total_gb"] == 121.5
    assert gpus[0]["memory_used_gb"] == 109.5 and gpus[0]["memory_source"] == "torch.cuda.mem_get_info"
