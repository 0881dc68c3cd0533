"""Sleep mode of the fake `vllm serve`, as vLLM 0.26 behaved on a real H100 (shared reference, item 6).

- `POST /sleep?level=1|2`, `POST /wake_up`, `GET /is_sleeping` exist only when the engine runs with
  `VLLM_SERVER_DEV_MODE=1` (else 404, as vLLM registers them only then); without `--enable-sleep-mode`
  `/sleep` fails with 500 like the real engine's assertion.
- While asleep `/health` stays 200 and a generation request waits until the engine is woken, then completes.
- `vllm:engine_sleep_state{sleep_state=awake|weights_offloaded|discard_all}` follows the state.

Scripted delays (seconds, env): FAKE_VLLM_SLEEP_DELAY_S (default 0.15), FAKE_VLLM_WAKE_DELAY_S (level 1,
default 0.05), FAKE_VLLM_WAKE_L2_DELAY_S (level 2 reloads the weights; default FAKE_VLLM_STARTUP_DELAY_S).
FAKE_VLLM_SLEEP_IGNORE=1 answers /sleep with 200 but stays awake (an answer the portal must not take on trust).
"""
from __future__ import annotations

import asyncio
import os

from aiohttp import web

from tests.fakes.vllm_serve import _env_float, log

STATES = {0: "awake", 1: "weights_offloaded", 2: "discard_all"}


class SleepMode:
    def __init__(self, *, enabled: bool, stats) -> None:
        self.enabled = enabled
        self.dev_mode = os.environ.get("VLLM_SERVER_DEV_MODE") == "1"
        self.stats = stats
        self.level = 0
        self.awake = asyncio.Event()
        self.awake.set()
        self._gauge()

    def routes(self, router: web.UrlDispatcher) -> list[tuple[str, str]]:
        """Register the dev endpoints when the dev mode is on; returns them for the startup route list."""
        if not self.dev_mode:
            return []
        router.add_post("/sleep", self.sleep)
        router.add_post("/wake_up", self.wake_up)
        router.add_get("/is_sleeping", self.is_sleeping)
        return [("/sleep", "POST"), ("/wake_up", "POST"), ("/is_sleeping", "GET")]

    async def wait_awake(self) -> None:
        await self.awake.wait()

    async def sleep(self, request: web.Request) -> web.Response:
        if not self.enabled:
            return web.json_response({"detail": "Sleep mode is not enabled: start the engine with "
                                                "--enable-sleep-mode."}, status=500)
        try:
            level = int(request.query.get("level", "1"))
        except ValueError:
            level = 0
        if level not in (1, 2):
            return web.json_response({"detail": f"level must be 1 or 2, not {request.query.get('level')}"},
                                     status=400)
        if self.level == 0 and os.environ.get("FAKE_VLLM_SLEEP_IGNORE") != "1":
            self.awake.clear()  # requests arriving from now on wait, as in the real engine
            await asyncio.sleep(_env_float("FAKE_VLLM_SLEEP_DELAY_S", 0.15))
            self.level = level
            self._gauge()
            log("EngineCore", "INFO", "gpu_worker.py:130", f"Sleep mode level {level}: freed GPU memory.")
        return web.Response(status=200)

    async def wake_up(self, request: web.Request) -> web.Response:
        if self.level:
            delay = _env_float("FAKE_VLLM_WAKE_DELAY_S", 0.05) if self.level == 1 else _env_float(
                "FAKE_VLLM_WAKE_L2_DELAY_S", _env_float("FAKE_VLLM_STARTUP_DELAY_S", 0.2))
            await asyncio.sleep(delay)
            self.level = 0
            self._gauge()
            self.awake.set()
            log("EngineCore", "INFO", "gpu_worker.py:160", "Woke up from sleep mode.")
        return web.Response(status=200)

    async def is_sleeping(self, request: web.Request) -> web.Response:
        return web.json_response({"is_sleeping": self.level != 0})

    def _gauge(self) -> None:
        for level, state in STATES.items():
            self.stats.v("vllm:engine_sleep_state", state).set(1.0 if self.level == level else 0.0)
