"""The boundary to the engines' HTTP endpoints. No other module of this app imports httpx."""
import asyncio
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
