"""The boundary to the engines' HTTP endpoints. No other module of this app imports httpx."""
import asyncio
import re
from dataclasses import dataclass
from datetime import datetime

import httpx
from django.utils import timezone


@dataclass(frozen=True)
class Fetched:
    """One GET: the body on a 2xx answer, else a sentence saying what went wrong."""

    url: str
    received_at: datetime
    text: str | None = None
    error: str | None = None


async def _get(client: httpx.AsyncClient, url: str) -> Fetched:
    try:
        response = await client.get(url)
    except httpx.TimeoutException:
        return Fetched(url, timezone.now(), error=f"{url} did not answer within {client.timeout.read:g} s")
    except httpx.HTTPError as exc:
        return Fetched(url, timezone.now(), error=f"{url} could not be reached: {exc.__class__.__name__}: {exc}")
    if response.status_code >= 300:
        return Fetched(url, timezone.now(), error=f"{url} answered HTTP {response.status_code}")
    return Fetched(url, timezone.now(), text=response.text)


async def _get_all(urls: dict, timeout: float) -> dict:
    # trust_env=False: an HTTP(S)_PROXY of the worker's environment must not catch loopback engines.
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        results = await asyncio.gather(*(_get(client, url) for url in urls.values()))
    return dict(zip(urls.keys(), results, strict=True))


def get_texts(urls: dict, *, timeout: float) -> dict:
    """GET every URL at once ({key: url} -> {key: Fetched}); one slow engine does not delay the others."""
    if not urls:
        return {}
    return asyncio.run(_get_all(urls, timeout))


def health_ok(base_url: str, *, timeout: float = 2.0) -> bool:
    """GET /health == 200. Before uvicorn starts, vLLM's port is bound but refuses connections."""
    try:
        return httpx.get(f"{base_url}/health", timeout=timeout, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def served_names(base_url: str, *, timeout: float = 2.0) -> list[str]:
    """Model ids listed by GET /v1/models (TEI has no such route: it answers /info)."""
    try:
        response = httpx.get(f"{base_url}/v1/models", timeout=timeout, trust_env=False)
        if response.status_code == 200:
            return [card.get("id", "") for card in response.json().get("data", [])]
        info = httpx.get(f"{base_url}/info", timeout=timeout, trust_env=False)
        if info.status_code == 200:
            return [info.json().get("served_model_name") or info.json().get("model_id", "")]
    except (httpx.HTTPError, ValueError):
        pass
    return []


# --- sleep mode: vLLM's development endpoints, reached only from the node's worker --------------------------------

_SLEEP_GAUGE = re.compile(r'^vllm:engine_sleep_state\{[^}]*sleep_state="(\w+)"[^}]*\}\s+([0-9.eE+-]+)', re.M)
_GAUGE_LEVELS = {"awake": 0, "weights_offloaded": 1, "discard_all": 2}


@dataclass(frozen=True)
class Posted:
    """One POST to an engine: ok, or a sentence saying why not."""

    ok: bool
    error: str = ""


def _post(url: str, *, timeout: float, params: dict | None = None) -> Posted:
    try:
        response = httpx.post(url, params=params, timeout=timeout, trust_env=False)
    except httpx.TimeoutException:
        return Posted(False, f"{url} did not answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return Posted(False, f"{url} could not be reached: {exc.__class__.__name__}: {exc}")
    if response.status_code == 404:
        return Posted(False, f"{url} answered 404: the engine was not started with sleep mode (restart it)")
    if response.status_code >= 300:
        return Posted(False, f"{url} answered HTTP {response.status_code}: {response.text[:300]}")
    return Posted(True)


def engine_sleep(base_url: str, *, level: int, timeout: float) -> Posted:
    """POST /sleep?level=N: level 1 offloads the weights to host RAM and drops the KV cache, level 2 drops both."""
    return _post(f"{base_url}/sleep", params={"level": level}, timeout=timeout)


def engine_wake(base_url: str, *, timeout: float) -> Posted:
    return _post(f"{base_url}/wake_up", timeout=timeout)


def engine_is_sleeping(base_url: str, *, timeout: float = 5.0) -> bool | None:
    """GET /is_sleeping; None when the engine gives no clear answer."""
    try:
        response = httpx.get(f"{base_url}/is_sleeping", timeout=timeout, trust_env=False)
        value = response.json().get("is_sleeping") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


def sleep_level_of(metrics_text: str) -> int | None:
    """The level `vllm:engine_sleep_state` reports (0 awake, 1, 2); None when the gauge is absent."""
    for state, value in _SLEEP_GAUGE.findall(metrics_text or ""):
        if state in _GAUGE_LEVELS and float(value) >= 1.0:
            return _GAUGE_LEVELS[state]
    return None


def engine_sleep_gauge(base_url: str, *, timeout: float = 5.0) -> int | None:
    try:
        response = httpx.get(f"{base_url}/metrics", timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None
    return sleep_level_of(response.text) if response.status_code == 200 else None
