"""The one websocket, through a real daphne, with a real Celery worker publishing."""
import asyncio
import json

import pytest
import websockets
from django.conf import settings
from django.test import Client

from nodes.models import Node
from nodes.tasks import node_heartbeat_task
from sparkportal.celery import node_queue

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def read_until(ws, predicate, timeout: float = 20.0) -> dict:
    async def loop():
        while True:
            message = json.loads(await ws.recv())
            if predicate(message):
                return message

    return await asyncio.wait_for(loop(), timeout)


def test_unauthenticated_socket_is_closed_with_4401(asgi_server):
    async def scenario():
        async with websockets.connect(f"{asgi_server.ws_url}/ws/events/", origin=asgi_server.url) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code

    assert asyncio.run(scenario()) == 4401


def test_a_user_cannot_join_someone_elses_group(asgi_server, member_user, stranger):
    cookie = session_cookie(member_user)

    async def scenario():
        async with websockets.connect(f"{asgi_server.ws_url}/ws/events/", origin=asgi_server.url,
                                      additional_headers={"Cookie": cookie}) as ws:
            await read_until(ws, lambda m: m["event"] == "subscribe.ok")
            await ws.send(json.dumps({"action": "subscribe", "group": f"accounts.user.{stranger.pk}"}))
            refused = await read_until(ws, lambda m: m["event"] == "subscribe.refused")
            await ws.send(json.dumps({"action": "subscribe", "group": "no.such.group"}))
            unknown = await read_until(ws, lambda m: m["event"] == "subscribe.refused")
            await ws.send(json.dumps({"hello": 1}))
            error = await read_until(ws, lambda m: m["event"] == "error")
            return refused, unknown, error

    refused, unknown, error = asyncio.run(scenario())
    assert refused["data"]["message"] == f"You may not follow 'accounts.user.{stranger.pk}'."
    assert unknown["data"]["group"] == "no.such.group"
    assert '"action": "subscribe"' in error["data"]["message"]


def test_heartbeat_from_a_real_worker_reaches_the_socket(asgi_server, celery_worker, member_user):
    cookie = session_cookie(member_user)

    async def scenario():
        url = f"{asgi_server.ws_url}/ws/events/?groups=nodes.all"
        async with websockets.connect(url, origin=asgi_server.url, additional_headers={"Cookie": cookie}) as ws:
            await read_until(ws, lambda m: m["event"] == "subscribe.ok" and m["data"]["group"] == "nodes.all")
            await asyncio.to_thread(
                node_heartbeat_task.apply_async, args=[settings.NODE_NAME], queue=node_queue(settings.NODE_NAME))
            return await read_until(ws, lambda m: m["event"] == "node.sample")

    event = asyncio.run(scenario())
    data = event["data"]
    assert data["node"] == settings.NODE_NAME
    assert 0 <= data["host"]["cpu_percent"] <= 100 and data["host"]["ram_total_gb"] > 0
    assert data["gpus"] == []  # no GPU on this machine is a normal state
    node = Node.objects.get(name=settings.NODE_NAME)
    assert node.queue == f"node.{settings.NODE_NAME}" and node.last_heartbeat_at is not None
    assert node.samples.count() >= 1


def test_logging_out_closes_the_sockets_of_that_session_only(asgi_server, member_user):
    browser = Client()
    browser.force_login(member_user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    other = session_cookie(member_user)  # the same user in another browser

    async def scenario():
        url = f"{asgi_server.ws_url}/ws/events/?groups=nodes.all"
        async with websockets.connect(url, origin=asgi_server.url, additional_headers={"Cookie": cookie}) as ws, \
                websockets.connect(url, origin=asgi_server.url, additional_headers={"Cookie": other}) as kept:
            await read_until(ws, lambda m: m["data"].get("group") == "nodes.all")
            await read_until(kept, lambda m: m["data"].get("group") == "nodes.all")
            assert (await asyncio.to_thread(browser.post, "/accounts/logout/")).status_code in (200, 302)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await read_until(ws, lambda m: False, timeout=10)
            await kept.send(json.dumps({"action": "subscribe", "group": "benchmarks.runs"}))
            still = await read_until(kept, lambda m: m["event"] == "subscribe.ok")
            return closed.value.rcvd.code, still

    code, still = asyncio.run(scenario())
    assert code == 4401 and still["data"]["group"] == "benchmarks.runs"


def test_a_role_change_takes_back_the_groups_the_user_may_no_longer_follow(asgi_server, operator_user):
    cookie = session_cookie(operator_user)

    async def scenario():
        url = f"{asgi_server.ws_url}/ws/events/?groups=servers.log.1,nodes.all"
        async with websockets.connect(url, origin=asgi_server.url, additional_headers={"Cookie": cookie}) as ws:
            await read_until(ws, lambda m: m["data"].get("group") == "servers.log.1" and m["event"] == "subscribe.ok")
            await read_until(ws, lambda m: m["data"].get("group") == "nodes.all")
            operator_user.role = "member"
            await asyncio.to_thread(operator_user.save)
            revoked = await read_until(ws, lambda m: m["event"] == "subscribe.revoked")
            await ws.send(json.dumps({"action": "subscribe", "group": "servers.log.1"}))
            refused = await read_until(ws, lambda m: m["event"] == "subscribe.refused")
            return revoked, refused

    revoked, refused = asyncio.run(scenario())
    assert revoked["data"]["group"] == "servers.log.1" and "role changed" in revoked["data"]["message"]
    assert refused["data"]["group"] == "servers.log.1"


def test_a_deactivated_user_loses_the_socket(asgi_server, member_user):
    cookie = session_cookie(member_user)

    async def scenario():
        async with websockets.connect(f"{asgi_server.ws_url}/ws/events/", origin=asgi_server.url,
                                      additional_headers={"Cookie": cookie}) as ws:
            await read_until(ws, lambda m: m["event"] == "subscribe.ok")
            member_user.is_active = False
            await asyncio.to_thread(member_user.save)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await read_until(ws, lambda m: False, timeout=10)
            return closed.value.rcvd.code

    assert asyncio.run(scenario()) == 4401
