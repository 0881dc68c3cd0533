"""Blocking Django ORM work of the gateway runs on its own small thread pool.

Not asgiref's shared thread: a slow ledger flush or routing query must not queue behind (or
hold up) the portal's ordinary views, and it keeps the gateway to at most two DB connections.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from django.db import close_old_connections

_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway-db")


def _call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_executor, partial(_call, fn, args, kwargs))
