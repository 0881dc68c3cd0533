"""A plan may name the node its servers start on; by default it is this host's node."""
import pytest
from django.conf import settings
from django.test import Client

from accounts.services import api_key_create
from benchmarks import services
from benchmarks.models import BenchmarkPlan, BenchmarkRun
from nodes.models import Node
from servers.models import Server
from sparkportal.exceptions import ValidationFailed
from tests.benchmarks.conftest import wait_for
from tests.benchmarks.factories import NodeFactory, ProfileFactory, ServerFactory
from tests.benchmarks.test_run_plan import finished, small_plan


@pytest.mark.django_db
def test_an_unknown_node_is_refused_with_the_nodes_to_pick_from(operator_user):
    profile = ProfileFactory(name="glm47-flash")
    with pytest.raises(ValidationFailed) as nothing_yet:
        services.plan_save(actor=operator_user, name="p", workload=services.workload_default(), profiles=[profile],
                           node="spark9")
    assert nothing_yet.value.message == (
        "Node 'spark9' is not registered: no node is registered yet (a node registers when its worker starts), "
        f"or leave the node empty to start the servers on this host's node ({settings.NODE_NAME}).")
    NodeFactory(name="spark1")
    NodeFactory(name="spark2")
    _key, raw = api_key_create(owner=operator_user, name="cli")
    client = Client(headers={"X-API-Key": raw})
    bad = client.post("/api/benchmarks/plans", {"name": "p", "profile_ids": [profile.pk], "node": "spark9"},
                      content_type="application/json")
    assert bad.status_code == 400
    assert bad.json() == {"detail": "Node 'spark9' is not registered: pick one of spark1, spark2, or leave the node "
                                    f"empty to start the servers on this host's node ({settings.NODE_NAME}).",
                          "code": "unknown_node"}
    ok = client.post("/api/benchmarks/plans", {"name": "p", "profile_ids": [profile.pk], "node": "spark2"},
                     content_type="application/json")
    assert ok.status_code == 201 and ok.json()["node"] == "spark2"
    default = client.post("/api/benchmarks/plans", {"name": "q", "profile_ids": [profile.pk]},
                          content_type="application/json")
    assert default.json()["node"] is None


def test_a_run_starts_its_servers_on_the_named_node(celery_worker, bench_node, bench_profile, operator_user):
    profile = bench_profile("glm47-flash")
    # A ready server of the profile on this host: a plan for spark2 must not borrow its numbers.
    here = ServerFactory(node=bench_node, profile=profile, status="ready")
    spark2 = Node.objects.create(name="spark2", queue="node.spark2")  # its worker is not running
    plan = small_plan(operator_user, [profile], name="on-spark2", node="spark2")
    run = services.run_create(plan=plan, actor=operator_user)
    assert run.config["node"] == "spark2"

    summary = wait_for(lambda: run.summaries.filter(server__isnull=False).first(), what="the server of the run")
    server = Server.objects.get(pk=summary.server_id)
    assert (server.node, summary.node_name, summary.started_server) == (spark2, "spark2", True)
    assert server.status == "queued"  # waiting for spark2's worker, on spark2's queue
    services.run_cancel(run=run, actor=operator_user)
    run = wait_for(lambda: finished(run), timeout=30, what="the cancelled run to finish")
    assert run.status == BenchmarkRun.Status.CANCELLED
    assert Server.objects.get(pk=server.pk).status == "stopped"
    assert Server.objects.get(pk=here.pk).status == "ready"


@pytest.mark.django_db
def test_the_plan_form_offers_the_registered_nodes(operator_user):
    profile = ProfileFactory(name="glm47-flash")
    NodeFactory(name="spark2")
    client = Client()
    client.force_login(operator_user)
    assert '<option value="spark2">spark2</option>' in client.get("/benchmarks/").content.decode()
    response = client.post("/benchmarks/", {"name": "weekly", "profiles": [profile.pk], "warmups": 5, "repeats": 3,
                                            "tool": "vllm", "node": "spark2"})
    assert response.status_code == 302
    assert BenchmarkPlan.objects.get(name="weekly").node.name == "spark2"
    assert "<td>spark2</td>" in client.get("/benchmarks/").content.decode()


def test_a_run_wakes_a_sleeping_server_of_its_profile_and_leaves_it_awake(celery_worker, bench_node, bench_profile,
                                                                          operator_user):
    from servers import services as server_services

    profile = bench_profile("dozy", enable_sleep_mode=True)
    server = server_services.server_start(user=operator_user, profile=profile, node=bench_node)
    wait_for(lambda: Server.objects.get(pk=server.pk).status == "ready", what="the server")
    server_services.server_sleep(user=operator_user, server=server, level=1)
    wait_for(lambda: Server.objects.get(pk=server.pk).slept_at, what="the server asleep")
    run = services.run_create(plan=small_plan(operator_user, [profile], name="dozy", repeats=1), actor=operator_user)
    run = wait_for(lambda: finished(run), timeout=60, what="the run")
    assert run.status == BenchmarkRun.Status.SUCCEEDED, run.message
    summary = run.summaries.get()
    assert (summary.server_id, summary.started_server) == (server.pk, False)
    assert Server.objects.get(pk=server.pk).status == "ready"
    server_services.server_stop(user=operator_user, server=server)
    wait_for(lambda: Server.objects.get(pk=server.pk).status == "stopped", what="the server stopped")
