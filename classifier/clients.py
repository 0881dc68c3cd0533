"""All outbound HTTP of the classifier: TEI /embed, OpenAI-compatible /v1/embeddings and /v1/chat/completions."""
import httpx

from sparkportal.exceptions import Unavailable

TIMEOUT = httpx.Timeout(120.0, connect=5.0)


class UpstreamError(Unavailable):
    code = "upstream_error"


class Refused(UpstreamError):
    """The server said no to the caller rather than failing: a quota, a key or a model not allowed.

    `reason` is the server's own message (the gateway's OpenAI-shaped error), `error_code` its code,
    `retry_after` the seconds it asked to wait (None: waiting will not help).
    """

    code = "upstream_refused"

    def __init__(self, message: str, *, status: int, error_code: str, reason: str, retry_after: int | None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.reason = reason
        self.retry_after = retry_after


# Statuses that refuse the caller; a 400 refuses it too when the gateway says a quota cannot fit the request.
REFUSING_STATUSES = frozenset({401, 403, 429})


def _headers(api_key: str) -> dict:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _openai_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of an OpenAI-shaped error body; empty strings when the body is something else."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


def _retry_after(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _post(url: str, body: dict, api_key: str) -> httpx.Response:
    try:
        response = httpx.post(url, json=body, headers=_headers(api_key), timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"Could not reach {url}: {exc}. Check that the server is running.") from exc
    if response.status_code >= 400:
        message = f"{url} answered {response.status_code}: {response.text[:300]}"
        code, reason = _openai_error(response)
        if response.status_code in REFUSING_STATUSES or code.endswith("_exceeded"):
            raise Refused(message, status=response.status_code, error_code=code,
                          reason=reason or response.text[:300], retry_after=_retry_after(response))
        raise UpstreamError(message)
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
