"""A preflight asked before any start: every node reports through its own worker, nothing is started."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from servers.models import Server, ServerGroup

pytestmark = pytest.mark.django_db(transaction=True)


def test_both_nodes_report_and_the_follower_reaches_the_leader(client, two_nodes, group_profile, operator_user):
    group_profile()
    client.force_login(operator_user)
    answer = client.post("/api/servers/groups/preflight", {"profile": "big", "nodes": ["lead", "follow"]},
                         content_type="application/json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["ok"] is True and body["master"].startswith("127.0.0.2:")
    lead, follow = body["reports"]
    assert (lead["node"], lead["interface"], lead["nccl"]["NCCL_SOCKET_IFNAME"]) == ("lead", "lo", "lo")
    assert follow["reaches"] is True and follow["nccl"]["VLLM_HOST_IP"] == "127.0.0.3"
    assert not ServerGroup.objects.exists() and not Server.objects.exclude(status="external").exists()


def test_a_wrong_interface_and_a_silent_worker_are_named(two_nodes, group_profile, operator_user):
    group_profile()
    two_nodes.follow.network_interface = "nosuch0"
    two_nodes.follow.save()
    out = io.StringIO()
    with pytest.raises(CommandError, match="preflight failed for master 127.0.0.2:"):
        call_command("servers", "--as", operator_user.username, "preflight", "big", "--nodes", "lead,follow",
                     stdout=out)
    assert "rank 1 follow: FAILED (interface nosuch0) Node follow: network interface nosuch0 does not exist" in \
        out.getvalue()
    two_nodes.stop("lead")
    out = io.StringIO()
    two_nodes.follow.network_interface = "lo"
    two_nodes.follow.save()
    with pytest.raises(CommandError):
        call_command("servers", "--as", operator_user.username, "preflight", "big", "--nodes", "lead,follow",
                     stdout=out)
    text = out.getvalue()
    assert "rank 0 lead: FAILED" in text and "The worker of node lead did not answer" in text
    assert "Node follow cannot reach the leader at 127.0.0.2:" in text


def test_members_may_not_ask_for_a_preflight(client, two_nodes, group_profile, member_user):
    group_profile()
    client.force_login(member_user)
    assert client.post("/api/servers/groups/preflight", {"profile": "big"},
                       content_type="application/json").status_code == 403


def test_the_start_forms_preflight_shows_every_nodes_report(client, two_nodes, group_profile, operator_user):
    group_profile()
    client.force_login(operator_user)
    assert 'data-action="preflight"' in client.get("/servers/").content.decode()
    answer = client.post("/servers/preflight/", {"profile": "big", "node": "lead", "nodes": "lead, follow"},
                         HTTP_HX_REQUEST="true")
    text = answer.content.decode()
    assert answer.status_code == 200 and 'data-preflight-ok="yes"' in text and "<html" not in text
    assert 'data-preflight-node="lead"' in text and 'data-preflight-node="follow"' in text
    assert "NCCL_SOCKET_IFNAME=lo" in text and "VLLM_HOST_IP=127.0.0.3" in text and "127.0.0.1/8" in text
    # Without htmx the whole page comes back, the reports in it and the form as it was filled.
    page = client.post("/servers/preflight/", {"profile": "big", "nodes": "lead,follow"}).content.decode()
    assert "<html" in page and 'data-preflight-node="follow"' in page and 'value="lead,follow"' in page
    assert not ServerGroup.objects.exists() and not Server.objects.exclude(status="external").exists()


def test_the_preflight_button_names_bad_input(client, two_nodes, group_profile, operator_user):
    group_profile()
    group_profile("small", node_count=1, pipeline_parallel_size=1)
    client.force_login(operator_user)
    cases = {("small", ""): "Profile small runs on one node: there is no network to check.",
             ("big", "lead,ghost"): "No node named ghost (nodes: follow, lead).",
             ("ghost", ""): "There is no such profile: choose one.",
             ("", ""): "Choose a multi-node profile to check.",
             ("big", "x" * 1001): "at most 1000 characters"}
    for (profile, nodes), words in cases.items():
        answer = client.post("/servers/preflight/", {"profile": profile, "nodes": nodes}, HTTP_HX_REQUEST="true")
        text = answer.content.decode()
        assert answer.status_code == 200 and "data-preflight-error" in text and words in text, (profile, text)


def test_a_member_neither_sees_nor_forges_the_preflight(client, two_nodes, group_profile, member_user):
    group_profile()
    client.force_login(member_user)
    assert 'data-action="preflight"' not in client.get("/servers/").content.decode()
    forged = client.post("/servers/preflight/", {"profile": "big", "nodes": "lead,follow"}, HTTP_HX_REQUEST="true")
    assert forged.status_code == 403
    assert "Only operators and admins may do this" in forged.content.decode()
    client.logout()
    anonymous = client.post("/servers/preflight/", {"profile": "big"})
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.url
    assert client.get("/servers/preflight/").status_code in (302, 405)


def test_a_check_that_expired_before_its_worker_took_it_is_named_not_a_500(two_nodes):
    from datetime import timedelta

    from django.utils import timezone

    from servers import tasks
    from servers.groups.preflight import _answer
    from sparkportal.celery import enqueue_on_node

    # What a busy or just-starting worker does with a check older than its window: revokes it unseen.
    late = enqueue_on_node(tasks.group_preflight_node_task, two_nodes.follow, "follow", 1, "127.0.0.2", 29500, 1.0,
                           expires=timezone.now() - timedelta(seconds=1))
    report = _answer(two_nodes.follow, 1, late, timeout=20)
    assert report["ok"] is False and report["rank"] == 1
    assert report["problem"].startswith("The worker of node follow did not take the check within its")
    assert "busy or was not running (queue node.follow)" in report["problem"]
