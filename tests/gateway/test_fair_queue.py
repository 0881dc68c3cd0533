"""The fair queue: a saturated model's requests wait their turn instead of a bare 429, shared by weight,
FIFO within a user, bounded by a deadline, freed on hang-up, and one queue across gateway processes."""
import asyncio
import contextlib
import os
import signal
import threading
import time

import httpx
import pytest
import redis
from django.conf import settings

from tests.conftest import stop_process, subprocess_env
from tests.gateway.conftest import LEASE_S, FakeVllm, _daphne

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

MODEL = "queue-model"
SHORT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
# A plug: a stream far longer than any test, closed by the test when the queue is set up behind it.
PLUG = {"model": MODEL, "messages": [{"role": "user", "content": "hold"}], "max_tokens": 4000, "ignore_eos": True,
        "stream": True}


@pytest.fixture(scope="module")
def queue_fake():
    fake = FakeVllm(MODEL, env={"FAKE_VLLM_TOKEN_DELAY_S": "0.01", "FAKE_VLLM_OUTPUT_TOKENS": "3"})
    try:
        fake.wait_ready()
        yield fake
    finally:
        fake.close()


@pytest.fixture
def queued(portal, queue_fake):
    """The queue model's server, capped by an operator at `cap` requests in flight."""
    from gateway.models import ServerCapacity
    from servers.models import Server

    def make(cap: int):
        with portal.db():
            server = Server.objects.create(node=portal.node, served_model_name=MODEL, port=queue_fake.port,
                                           status=Server.Status.READY)
            ServerCapacity.objects.create(server=server, max_in_flight=cap)
        _wait_for_capacity(portal, server.pk, cap)
        return server

    return make


def _wait_for_capacity(portal, server_id: int, cap: int) -> None:
    """Until the daphne's routing table has the server with its cap (its refresh runs every 0.5 s)."""
    time.sleep(1.2)


def _redis():
    return redis.Redis.from_url(settings.REDIS_URL)


def _waiting(user) -> int:
    return _redis().llen(f"portal:fq:m:{MODEL}:f:u{user.pk}")


def _wait(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Plug:
    """`n` long streams holding the model's slots until `pull()`."""

    def __init__(self, url: str, raw: str, n: int):
        self.clients = []
        self.streams = []
        self.lines = []  # a dropped line iterator would close its stream
        for _ in range(n):
            client = httpx.Client(timeout=60)
            stream = client.stream("POST", f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
                                   json=PLUG)
            response = stream.__enter__()
            lines = response.iter_lines()
            while '"content"' not in next(lines):
                pass
            self.lines.append(lines)
            self.clients.append(client)
            self.streams.append(stream)

    def pull(self) -> None:
        for stream, client in zip(self.streams, self.clients, strict=True):
            stream.__exit__(None, None, None)
            client.close()


def _fire_in_background(jobs: list[tuple[str, str, dict]], done: list, statuses: list) -> threading.Thread:
    """Send every (url, key, payload) at once; `done` gets each job's index in the order they complete."""

    async def one(client, i, url, raw, payload):
        response = await client.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
                                     json=payload)
        statuses.append(response.status_code)
        done.append(i)

    async def run():
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=len(jobs))) as client:
            await asyncio.gather(*[one(client, i, *job) for i, job in enumerate(jobs)])

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    return thread


def _set_weight(portal, user, weight: int) -> None:
    from gateway.models import QueueWeight

    with portal.db():
        QueueWeight.objects.create(user=user, weight=weight)


def test_at_saturation_weights_three_to_one_get_three_to_one_of_the_completions(portal, queued):
    queued(cap=2)
    _plugger, plug_key = portal.member()
    heavy, heavy_key = portal.member()
    light, light_key = portal.member()
    _set_weight(portal, heavy, 3)
    plug = Plug(portal.url, plug_key, 2)
    jobs = [(portal.url, heavy_key, SHORT)] * 120 + [(portal.url, light_key, SHORT)] * 40
    done, statuses = [], []
    thread = _fire_in_background(jobs, done, statuses)
    try:
        # Both users' requests are all queued behind the plug before it is pulled.
        assert _wait(lambda: _waiting(heavy) == 120 and _waiting(light) == 40, timeout=60)
        # Operators see the queue in the portal's Prometheus metrics.
        metrics = httpx.get(f"{portal.url}/metrics", timeout=10).text
        assert f'portal_gateway_queued{{model="{MODEL}"}} 160.0' in metrics
    finally:
        plug.pull()
    thread.join(120)
    assert statuses == [200] * 160
    first = done[:80]  # both users still have requests waiting throughout these
    heavy_share = sum(1 for i in first if i < 120)
    ratio = heavy_share / (80 - heavy_share)
    assert 2.7 <= ratio <= 3.3, (heavy_share, ratio)


def test_requests_of_one_user_are_served_in_the_order_they_came(portal, queued):
    queued(cap=1)
    _plugger, plug_key = portal.member()
    user, raw = portal.member()
    plug = Plug(portal.url, plug_key, 1)
    done, statuses, threads = [], [], []
    try:
        for i in range(8):
            # One at a time, each queued before the next is sent: the arrival order is known.
            threads.append(_fire_in_background([(portal.url, raw, SHORT)], _Tagged(done, i), statuses))
            assert _wait(lambda n=i + 1: _waiting(user) == n)
    finally:
        plug.pull()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * 8
    assert done == list(range(8))


class _Tagged(list):
    """A `done` list for one job that records the job's own number in a shared list instead."""

    def __init__(self, shared: list, tag: int):
        super().__init__()
        self.shared, self.tag = shared, tag

    def append(self, _index) -> None:
        self.shared.append(self.tag)


def test_a_light_user_waits_for_one_slot_however_many_a_heavy_user_queued(portal, queued):
    queued(cap=1)
    _plugger, plug_key = portal.member()
    heavy, heavy_key = portal.member()
    light, light_key = portal.member()
    plug = Plug(portal.url, plug_key, 1)
    done, statuses = [], []
    try:
        # The heavy user was served just now and has a hundred more queued.
        heavy_thread = _fire_in_background([(portal.url, heavy_key, SHORT)] * 100, done, statuses)
        assert _wait(lambda: _waiting(heavy) == 100, timeout=60)
        light_done = []
        light_thread = _fire_in_background([(portal.url, light_key, SHORT)], _Tagged(done, "light"), light_done)
        assert _wait(lambda: _waiting(light) == 1)
    finally:
        plug.pull()
    heavy_thread.join(120)
    light_thread.join(60)
    assert light_done == [200]
    assert done.index("light") <= 1  # at most one heavy request went first


def test_a_user_at_the_concurrency_quota_waits_instead_of_a_429(portal, queued):
    queued(cap=50)
    user, raw = portal.member(concurrent_requests=1)
    plug = Plug(portal.url, raw, 1)
    done, statuses = [], []
    try:
        thread = _fire_in_background([(portal.url, raw, SHORT)] * 3, done, statuses)
        # The server has room; the user's own quota holds them.
        assert _wait(lambda: _waiting(user) == 3)
        time.sleep(0.3)
        assert statuses == []
    finally:
        plug.pull()
    thread.join(60)
    assert statuses == [200] * 3


def test_after_the_deadline_a_429_with_retry_after_and_the_stream_is_told_so(portal, queued, tmp_path):
    queued(cap=1)
    _plugger, plug_key = portal.member()
    user, raw = portal.member()
    impatient = _daphne(subprocess_env(PORTAL_QUEUE_DEADLINE_S="1.5", PORTAL_GATEWAY_KEEPALIVE_S="0.5",
                                       PORTAL_USAGE_FLUSH_S="0.1", PORTAL_GATEWAY_LEASE_S=str(LEASE_S)), tmp_path)
    plug = Plug(portal.url, plug_key, 1)
    try:
        began = time.monotonic()
        response = httpx.post(f"{impatient.url}/v1/chat/completions", headers=portal.headers(raw), json=SHORT,
                              timeout=30)
        waited = time.monotonic() - began
        assert response.status_code == 429 and waited >= 1.5
        assert response.headers["retry-after"] == "5"
        error = response.json()["error"]
        assert error["code"] == "queue_timeout" and "PORTAL_QUEUE_DEADLINE_S" in error["message"]
        # A stream is kept alive with comments while it waits, then told in an error event.
        with httpx.stream("POST", f"{impatient.url}/v1/chat/completions", headers=portal.headers(raw),
                          json={**SHORT, "stream": True}, timeout=30) as stream:
            lines = [line for line in stream.iter_lines() if line]
        assert lines[0] == f": queued for {MODEL}, please wait"
        assert '"queue_timeout"' in lines[-1]
        assert _waiting(user) == 0  # nothing left behind in the queue
    finally:
        plug.pull()
        stop_process(impatient.proc)
    rows = portal.usage_rows(user, count=2)
    assert [(r.status, r.error_code) for r in rows] == [(429, "queue_timeout")] * 2


def test_a_client_that_hangs_up_while_queued_frees_its_place(portal, queued, queue_fake):
    from gateway.inflight import inflight_counts

    server = queued(cap=1)
    _plugger, plug_key = portal.member()
    quitter, quitter_key = portal.member()
    patient, patient_key = portal.member()
    plug = Plug(portal.url, plug_key, 1)
    try:
        with httpx.Client(timeout=30) as client:
            with client.stream("POST", f"{portal.url}/v1/chat/completions", headers=portal.headers(quitter_key),
                               json={**SHORT, "stream": True}):
                assert _wait(lambda: _waiting(quitter) == 1)
            # Hung up while queued: its place is gone.
            assert _wait(lambda: _waiting(quitter) == 0)
            assert _redis().hlen(f"portal:fq:m:{MODEL}:meta") == 0
    finally:
        plug.pull()
    # The slot goes to the next in line, not to the request that left.
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(patient_key), json=SHORT,
                          timeout=30)
    assert response.status_code == 200
    assert _wait(lambda: asyncio.run(inflight_counts([server.pk]))[server.pk] == 0)
    rows = portal.usage_rows(quitter, count=1)
    assert [(r.status, r.error_code) for r in rows] == [(499, "client_disconnected")]


def test_one_queue_across_two_gateway_processes(portal, queued, queue_fake, tmp_path):
    queued(cap=2)
    _plugger, plug_key = portal.member()
    heavy, heavy_key = portal.member()
    light, light_key = portal.member()
    _set_weight(portal, heavy, 3)
    other = _daphne(subprocess_env(PORTAL_GATEWAY_ROUTES_TTL_S="0.5", PORTAL_USAGE_FLUSH_S="0.1",
                                   PORTAL_GATEWAY_LEASE_S=str(LEASE_S)), tmp_path)
    busiest = []
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            busiest.append(httpx.get(f"{queue_fake.url}/load", timeout=5).json()["server_load"])
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    try:
        httpx.post(f"{other.url}/v1/chat/completions", headers=portal.headers(heavy_key), json=SHORT, timeout=30)
        time.sleep(1.0)  # the second process's routing table has the capped server
        plug = Plug(portal.url, plug_key, 2)
        # The heavy user queues through one process, the light user through the other.
        jobs = [(portal.url, heavy_key, SHORT)] * 120 + [(other.url, light_key, SHORT)] * 40
        done, statuses = [], []
        thread = _fire_in_background(jobs, done, statuses)
        try:
            assert _wait(lambda: _waiting(heavy) == 120 and _waiting(light) == 40, timeout=60)
            sampler.start()
        finally:
            plug.pull()
        thread.join(120)
    finally:
        sampling.set()
        stop_process(other.proc)
    sampler.join(10)
    assert statuses == [200] * 160
    assert max(busiest) <= 2  # never more in flight than the cap, whichever process granted it
    # Two processes race for each freed slot: a window of 80 keeps one grant's order from deciding the ratio.
    first = done[:80]
    heavy_share = sum(1 for i in first if i < 120)
    assert 2.7 <= heavy_share / (80 - heavy_share) <= 3.3, heavy_share


def _running(key: str) -> int:
    """Entries of an in-flight set that still count: renewed within the lease (as every counter sees them)."""
    client = _redis()
    return client.zcount(key, time.time() - LEASE_S, "+inf")


def test_slots_held_by_a_killed_gateway_process_come_back_within_the_lease(portal, queued, tmp_path):
    from accounts.limits import server_inflight_key

    server = queued(cap=2)
    holder, holder_key = portal.member(concurrent_requests=2)
    doomed = _daphne(subprocess_env(PORTAL_GATEWAY_ROUTES_TTL_S="0.5", PORTAL_GATEWAY_LEASE_S=str(LEASE_S)),
                     tmp_path)
    try:
        _wait_for_capacity(portal, server.pk, 2)
        plug = Plug(doomed.url, holder_key, 2)  # both slots of the model, and both of the user's own
        assert _running(server_inflight_key(server.pk)) == 2
        os.kill(doomed.proc.pid, signal.SIGKILL)
        doomed.proc.wait(10)
        with contextlib.suppress(httpx.HTTPError):
            plug.pull()
        # Nobody renews the dead process's entries: within one lease the model and the user have room again,
        # long before the queue's deadline (PORTAL_QUEUE_DEADLINE_S, 30 s) would answer 429.
        response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(holder_key), json=SHORT,
                              timeout=60)
        assert response.status_code == 200
        assert _wait(lambda: _running(server_inflight_key(server.pk)) == 0)
        assert _running(f"portal:fq:run:{holder.pk}") == 0
        assert _running(f"portal:q:{holder.pk}:conc") == 0
    finally:
        stop_process(doomed.proc)


def test_a_long_stream_of_a_live_process_keeps_its_slot_past_the_lease(portal, queued):
    from accounts.limits import server_inflight_key

    server = queued(cap=1)
    _plugger, plug_key = portal.member()
    user, raw = portal.member()
    plug = Plug(portal.url, plug_key, 1)
    done, statuses = [], []
    try:
        thread = _fire_in_background([(portal.url, raw, SHORT)], done, statuses)
        assert _wait(lambda: _waiting(user) == 1)
        time.sleep(LEASE_S * 2.5)  # renewed meanwhile: the stream's entry still counts, the next one waits
        assert _running(server_inflight_key(server.pk)) == 1
        assert statuses == [] and _waiting(user) == 1
    finally:
        plug.pull()
    thread.join(60)
    assert statuses == [200]


def _team(portal, members, **fields):
    from accounts.teams import services
    from tests.factories import UserFactory

    with portal.db():
        admin = UserFactory(username=f"root{time.monotonic_ns()}", role="admin")
        team = services.team_save(actor=admin, name=f"team-{time.monotonic_ns()}", **fields)
        for user in members:
            services.team_member_add(actor=admin, team=team, user=user)
    return team


def test_a_member_at_the_teams_concurrency_limit_waits_while_others_pass(portal, queued, tmp_path):
    queued(cap=50)
    ann, ann_key = portal.member()
    bob, bob_key = portal.member()
    _outsider, outsider_key = portal.member()
    team = _team(portal, [ann, bob], concurrent_requests=1)
    plug = Plug(portal.url, ann_key, 1)  # the team's one request at a time
    done, statuses = [], []
    try:
        thread = _fire_in_background([(portal.url, bob_key, SHORT)], done, statuses)
        assert _wait(lambda: _waiting(bob) == 1)  # queued, not a 429
        # The model has room: someone outside the team is served meanwhile.
        other = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(outsider_key), json=SHORT,
                           timeout=30)
        assert other.status_code == 200
        assert statuses == [] and _waiting(bob) == 1
    finally:
        plug.pull()
    thread.join(60)
    assert statuses == [200]
    # Past the deadline the 429 names the team's limit.
    impatient = _daphne(subprocess_env(PORTAL_QUEUE_DEADLINE_S="1", PORTAL_GATEWAY_LEASE_S=str(LEASE_S)), tmp_path)
    plug = Plug(portal.url, ann_key, 1)
    try:
        refused = httpx.post(f"{impatient.url}/v1/chat/completions", headers=portal.headers(bob_key), json=SHORT,
                             timeout=30)
    finally:
        plug.pull()
        stop_process(impatient.proc)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "queue_timeout" and f"team {team.name} is running its 1 at a time" in error["message"]


def test_a_teams_weight_of_three_gives_its_member_three_to_one_of_the_completions(portal, queued):
    queued(cap=2)
    _plugger, plug_key = portal.member()
    heavy, heavy_key = portal.member()
    light, light_key = portal.member()
    _team(portal, [heavy], queue_weight=3)  # an admin's setting on the team; the member's own weight is 1
    plug = Plug(portal.url, plug_key, 2)
    jobs = [(portal.url, heavy_key, SHORT)] * 120 + [(portal.url, light_key, SHORT)] * 40
    done, statuses = [], []
    thread = _fire_in_background(jobs, done, statuses)
    try:
        assert _wait(lambda: _waiting(heavy) == 120 and _waiting(light) == 40, timeout=60)
    finally:
        plug.pull()
    thread.join(120)
    assert statuses == [200] * 160
    heavy_share = sum(1 for i in done[:80] if i < 120)
    assert 2.7 <= heavy_share / (80 - heavy_share) <= 3.3, heavy_share
