"""Content logging for debugging a deployment: off unless PORTAL_CONTENT_LOGGING=1.

By default the gateway keeps counts only (the usage ledger): no prompt, no answer, in the database, the
logs or Redis. With the setting on, each request's body and its answer (a stream's relayed events, up to
MAX_BYTES each) go to the `gateway.content` logger, and every user's usage and chat page shows a banner
saying so (gateway/templates: _content_logging.html).
"""
from __future__ import annotations

import logging

from django.conf import settings

log = logging.getLogger("gateway.content")
MAX_BYTES = 64 * 1024


def enabled() -> bool:
    return settings.PORTAL_CONTENT_LOGGING


def keep(capture: list[bytes], data: bytes) -> None:
    """Add relayed bytes to a stream's capture, up to MAX_BYTES in all."""
    room = MAX_BYTES - sum(len(part) for part in capture)
    if room > 0:
        capture.append(data[:room])


def request(*, username: str, model: str, endpoint: str, body: bytes) -> None:
    log.info("request user=%s model=%s endpoint=%s body=%s", username, model, endpoint,
             body[:MAX_BYTES].decode("utf-8", "replace"))


def answer(*, username: str, model: str, status: int, data: bytes) -> None:
    log.info("answer user=%s model=%s status=%s body=%s", username, model, status,
             data[:MAX_BYTES].decode("utf-8", "replace"))
