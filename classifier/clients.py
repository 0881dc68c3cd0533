"""All outbound HTTP of the classifier: TEI /embed, OpenAI-compatible /v1/embeddings and /v1/chat/completions."""
import httpx

from sparkportal.exceptions import Unavailable

TIMEOUT = httpx.Timeout(120.0, connect=5.0)


class UpstreamError(Unavailable):
    code = "upstream_error"


def _headers(api_key: str) -> dict:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _post(url: str, body: dict, api_key: str) -> httpx.Response:
    try:
        response = httpx.post(url, json=body, headers=_headers(api_key), timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"Could not reach {url}: {exc}. Check that the server is running.") from exc
    if response.status_code >= 400:
        raise UpstreamError(f"{url} answered {response.status_code}: {response.text[:300]}")
    return response


def tei_embed(*, url: str, texts: list[str], api_key: str = "") -> list[list[float]]:
    """TEI's native route: {"inputs": [...], "normalize": true, "truncate": true} -> list of vectors."""
    body = {"inputs": texts, "normalize": True, "truncate": True}
    return _post(url.rstrip("/") + "/embed", body, api_key).json()


def openai_embed(*, url: str, model: str, texts: list[str], api_key: str = "") -> list[list[float]]:
    body = {"model": model, "input": texts, "encoding_format": "float"}
    data = _post(url.rstrip("/") + "/embeddings", body, api_key).json()["data"]
    return [item["embedding"] for item in sorted(data, key=lambda d: d["index"])]


def chat_completion(*, url: str, api_key: str, body: dict) -> dict:
    return _post(url.rstrip("/") + "/chat/completions", body, api_key).json()
