"""A person starts a model across two nodes in the browser, sees every rank and its log, and stops the group."""
import pytest

from servers.models import ServerGroup
from tests.conftest import login
from tests.servers.groups.conftest import group_state, marked_pids, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_start_a_group_see_its_ranks_and_stop_it(asgi_server, two_nodes, page, group_profile, operator_user):
    group_profile()
    login(page, asgi_server, "oscar")
    page.goto(f"{asgi_server.url}/servers/")
    page.select_option("select[name=profile]", "big")
    page.fill("input[name=nodes]", "lead, follow")
    page.wait_for_selector('[data-plan-ok="yes"]')
    page.click("#start-form button[type=submit]")
    page.wait_for_url("**/servers/*/")
    group = ServerGroup.objects.get()
    wait_for(lambda: group_state(group)[0] == "ready", 90, "the group to be ready")
    page.reload()
    assert page.locator("[data-group-status]").get_attribute("data-group-status") == "ready"
    assert page.locator('[data-rank="1"]').inner_text().startswith("1 (headless)")
    assert "Running in headless mode, node rank 1" in page.locator('[data-rank-log="1"]').inner_text()
    page.click('[data-action="stop"]')
    wait_for(lambda: group_state(group) == ("stopped", ["stopped", "stopped"]), 60, "the group to stop")
    page.reload()
    assert page.locator("[data-group-status]").get_attribute("data-group-status") == "stopped"
    assert page.locator('[data-action="group-restart"]').count() == 1
    assert marked_pids() == []


def test_an_operator_clicks_preflight_and_sees_each_nodes_report(asgi_server, two_nodes, page, group_profile,
                                                                 operator_user, member_user):
    group_profile()
    login(page, asgi_server, "oscar")
    page.goto(f"{asgi_server.url}/servers/")
    page.select_option("select[name=profile]", "big")
    page.fill("input[name=nodes]", "lead, follow")
    page.click('[data-action="preflight"]')
    page.wait_for_selector("[data-preflight-ok]", timeout=40000)
    assert page.url == f"{asgi_server.url}/servers/"  # swapped into the page, no navigation
    assert page.locator("[data-preflight-ok]").get_attribute("data-preflight-ok") == "yes"
    follow = page.locator('[data-preflight-node="follow"]')
    assert follow.get_attribute("data-preflight-report-ok") == "yes"
    assert follow.locator("[data-reaches]").inner_text().startswith("yes")
    assert "NCCL_SOCKET_IFNAME=lo" in follow.inner_text() and "VLLM_HOST_IP=127.0.0.3" in follow.inner_text()
    assert "(is the leader)" in page.locator('[data-preflight-node="lead"]').inner_text()
    assert not ServerGroup.objects.exists()

    # A wrong interface on the follower: the report names it, in the page.
    two_nodes.follow.network_interface = "nosuch0"
    two_nodes.follow.save()
    page.click('[data-action="preflight"]')
    page.wait_for_selector('[data-preflight-ok="no"]', timeout=40000)
    problem = page.locator('[data-preflight-node="follow"] [data-problem]').inner_text()
    assert "network interface nosuch0 does not exist" in problem

    page.context.clear_cookies()
    login(page, asgi_server, "mia")
    page.goto(f"{asgi_server.url}/servers/")
    assert page.locator('[data-action="preflight"]').count() == 0
