"""Usage rows leave the request path at once: they are appended to a list here and written in
batches by a background task (one INSERT per batch), and on a clean stop by `flush_now`.
The hot path pays one list append per request.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from gateway import db

log = logging.getLogger(__name__)

MAX_BUFFER = 200_000  # rows kept while the database is unreachable; beyond that the oldest go


class Ledger:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._task: asyncio.Task | None = None
        self._lock = threading.Lock()  # flush_now may run from atexit while a batch is in flight

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.rows:
            await asyncio.sleep(settings.PORTAL_USAGE_FLUSH_S)
            batch, self.rows = self.rows, []
            try:
                await db.run(self._write, batch)
            except Exception:  # noqa: BLE001 - keep the rows and try again next round
                log.exception("could not write %d usage rows; will retry", len(batch))
                self.rows[:0] = batch[-MAX_BUFFER:]
                await asyncio.sleep(5)

    async def flush(self) -> None:
        batch, self.rows = self.rows, []
        if batch:
            await db.run(self._write, batch)

    def flush_now(self) -> None:
        """Synchronous last flush (process exit)."""
        batch, self.rows = self.rows, []
        if batch:
            self._write(batch)

    def _write(self, batch: list[dict]) -> None:
        from servers import services as server_services

        with self._lock:
            _rows_write(batch)
            try:
                server_services.server_touch(seen=_last_request_per_server(batch))
            except Exception:  # noqa: BLE001 - the rows are written: retrying the batch would count them twice
                log.warning("could not mark the servers of %d usage rows as used", len(batch), exc_info=True)


# The database is away: keep the rows and retry. Any other error belongs to the rows themselves.
_UNREACHABLE = (OperationalError, InterfaceError)


def _rows_write(batch: list[dict]) -> None:
    """One INSERT for the batch; if the database refuses it, each row alone, so that one bad row (a user
    deleted since its request, a value the database cannot store) is logged and dropped instead of
    holding back every later row."""
    from gateway.usage import services as usage_services

    try:
        usage_services.usage_record_bulk(rows=batch)
        return
    except _UNREACHABLE:
        raise
    except (DatabaseError, ValueError, TypeError):
        pass
    for row in batch:
        try:
            usage_services.usage_record_bulk(rows=[row])
        except _UNREACHABLE:
            raise
        except (DatabaseError, ValueError, TypeError) as exc:
            log.error("dropped a usage row the database refused (%s): %r", exc, row)


def _last_request_per_server(batch: list[dict]) -> dict[int, datetime]:
    seen: dict[int, datetime] = {}
    for row in batch:
        server_id = row.get("server_id")
        if server_id is None:
            continue
        ended = datetime.fromtimestamp(row["created_at"].timestamp() + row["duration_ms"] / 1000, tz=UTC)
        if server_id not in seen or ended > seen[server_id]:
            seen[server_id] = ended
    return seen
