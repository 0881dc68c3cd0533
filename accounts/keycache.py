"""In-process cache of authenticated API keys, invalidated through Redis pub/sub.

A key lookup is a database query; on the REST API and the gateway it would be paid on every
request. Entries live at most TTL seconds, and a revocation (or a change of the owner) is
published on a Redis channel that every process listens to, so it takes effect at once. The
cache is bypassed whenever the listener is not subscribed (start-up, Redis down, after a
reconnect the cache is emptied), so a missed message can never keep a revoked key alive.
"""
import logging
import os
import threading
import time

import redis
from django.conf import settings

log = logging.getLogger(__name__)

CHANNEL = "sparkportal:apikeys:invalidate"
ALL = "*"
TTL_SECONDS = 30.0


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[object, float]] = {}
        self._lock = threading.Lock()
        self._live = threading.Event()
        self._pid: int | None = None

    def get(self, hashed: str):
        self._ensure_listener()
        if not self._live.is_set():
            return None
        entry = self._entries.get(hashed)
        if entry is None or time.monotonic() - entry[1] > TTL_SECONDS:
            return None
        return entry[0]

    def put(self, hashed: str, key) -> None:
        if self._live.is_set():
            self._entries[hashed] = (key, time.monotonic())

    def clear(self, hashed: str = ALL) -> None:
        with self._lock:
            if hashed == ALL:
                self._entries.clear()
            else:
                self._entries.pop(hashed, None)

    def _ensure_listener(self) -> None:
        # After a fork (Celery prefork) the thread is gone: start one per process.
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._live.clear()
            self._entries.clear()
            threading.Thread(target=self._listen, name="apikey-cache-listener", daemon=True).start()

    def _listen(self) -> None:
        while True:
            try:
                client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2,
                                              health_check_interval=15)
                pubsub = client.pubsub(ignore_subscribe_messages=False)
                pubsub.subscribe(CHANNEL)
                for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        self.clear()
                        self._live.set()
                    elif message["type"] == "message":
                        self.clear(message["data"].decode())
            except Exception:  # noqa: BLE001 - keep listening; the cache is off meanwhile
                log.debug("API key cache listener reconnecting", exc_info=True)
            self._live.clear()
            self.clear()
            time.sleep(1)


cache = KeyCache()


def publish_invalidation(hashed: str = ALL) -> None:
    """Tell every process to forget a key (or all keys). Best effort: entries expire anyway."""
    cache.clear(hashed)
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).publish(CHANNEL, hashed)
    except redis.RedisError:
        log.warning("could not publish API key invalidation; cached entries expire within %s s", TTL_SECONDS)
