"""A 512 MB file from the fake hub: the portal's download task vs a plain huggingface_hub.hf_hub_download,
interleaved in one run. Targets: throughput ratio >= 0.9 (progress reporting must not slow the transfer)
and at most 2 progress events a second per download reaching the channel layer (what the browser gets).

The portal side runs the real task body (download_run_task) with its progress hook, database writes and
event publishing, against a throwaway SQLite database and an embedded Redis started here.

Usage: .venv/bin/python perf/download.py [--mb 512] [--rounds 2]
"""
import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import scratch

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
MB = 1024 * 1024


def setup_django(var: Path) -> None:
    os.environ.pop("DATABASE_URL", None)  # a throwaway SQLite database, whatever the shell points at
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    scratch.setup_django(var, name="download", own_redis=True)


class EventCounter:
    """Listens on the download's channel-layer group the way the websocket consumer does."""

    def __init__(self, group: str):
        self.group = group
        self.progress: list[float] = []
        self.ready = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        self.ready.wait(10)

    async def _run(self) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self.ready.set()
        while not self.stop:
            try:
                message = await asyncio.wait_for(layer.receive(channel), 0.5)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - Redis going away at exit ends the listener
                return
            if message.get("event") == "download.progress":
                # The time it was published (receipt can bunch up behind the busy download threads).
                self.progress.append(datetime.fromisoformat(message["data"]["at"]).timestamp())


class HubProcess:
    """The fake hub in its own process, like a remote hub: its CPU does not compete with the client's."""

    def __init__(self, mb: int):
        port = scratch.free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.fake_hub", "--port", str(port), "--repo",
                                      "perf/big-model", "--single-file-mb", str(mb)], cwd=BASE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "fake hub on" not in line:
            raise RuntimeError(f"fake hub did not start: {line!r}")
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_hub(mb: int) -> HubProcess:
    return HubProcess(mb)


def plain(hub_url: str, repo_id: str, filename: str, size: int) -> float:
    from huggingface_hub import hf_hub_download

    with tempfile.TemporaryDirectory() as cache:
        began = time.monotonic()
        hf_hub_download(repo_id, filename, cache_dir=cache, endpoint=hub_url)
        return size / (time.monotonic() - began)


def portal(hub_url: str, repo_id: str, size: int, node) -> tuple[float, list[float], float]:
    from django.conf import settings

    from models_registry import events, services
    from models_registry.tasks import download_run_task

    with tempfile.TemporaryDirectory() as weights:
        settings.PORTAL_HF_ENDPOINT = hub_url
        settings.PORTAL_WEIGHTS_DIR = Path(weights)
        download, _ = services.download_request(actor=None, node=node, repo_id=repo_id)
        counter = EventCounter(events.download_group(download.pk))
        began = time.monotonic()
        download_run_task.apply(args=[download.pk])  # the task body, in this process
        elapsed = time.monotonic() - began
        time.sleep(0.3)
        counter.stop = True
        download.refresh_from_db()
        assert download.status == "done", download.error
        return size / elapsed, counter.progress, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="perf-download-"))
    setup_django(var)
    from nodes.models import Node

    hub = start_hub(args.mb)
    repo_id, filename = "perf/big-model", "model.safetensors"
    size = args.mb * MB
    node, _ = Node.objects.get_or_create(name="perf", defaults={"queue": "node.perf"})
    plain(hub.url, repo_id, filename, size)  # warm the page cache of the hub's file
    plain_rates, portal_rates, gaps, rates = [], [], [], []
    for _ in range(args.rounds):
        plain_rates.append(plain(hub.url, repo_id, filename, size))
        rate, stamps, elapsed = portal(hub.url, repo_id, size, node)
        portal_rates.append(rate)
        gaps += [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        rates.append(len(stamps) / elapsed)
    hub.stop()
    best_plain, best_portal = max(plain_rates), max(portal_rates)
    ratio = best_portal / best_plain
    event_rate = max(rates)
    line = (f"download {args.mb} MB: portal task {best_portal / 1e6:.0f} MB/s, hf_hub_download {best_plain / 1e6:.0f} "
            f"MB/s, ratio {ratio:.3f} (target >= 0.9); progress events {event_rate:.2f}/s, shortest gap "
            f"{min(gaps) if gaps else 0:.2f} s (target <= 2/s)")
    print(line)
    scratch.record(f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | download | {os.cpu_count()} CPU, loopback fake hub | "
                   f"{args.mb} MB: portal task {best_portal / 1e6:.0f} MB/s vs hf_hub_download "
                   f"{best_plain / 1e6:.0f} MB/s; {event_rate:.2f} progress events/s, shortest gap "
                   f"{min(gaps) if gaps else 0:.2f} s | ratio {ratio:.3f} (target >= 0.9) |")


if __name__ == "__main__":
    main()
