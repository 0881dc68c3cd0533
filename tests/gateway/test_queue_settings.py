"""Who may set the fair queue's weights (admins) and caps (operators), and what bad values get."""
import pytest

from accounts.models import AuditEvent
from gateway.models import QueueWeight, ServerCapacity
from nodes.models import Node
from servers.models import Server

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(db):
    node = Node.objects.create(name="qs", queue="node.qs")
    return Server.objects.create(node=node, served_model_name="m", port=9, status=Server.Status.READY)


def _put(client, url, body):
    return client.put(url, body, content_type="application/json")


def test_only_an_admin_sets_a_weight(client, admin_user, operator_user, member_user):
    for user in (member_user, operator_user):
        client.force_login(user)
        # Not even one's own: a member raising their share would starve the others.
        response = _put(client, f"/api/gateway/queue/weights/{user.pk}", {"weight": 100})
        assert response.status_code == 403 and "Only admins" in response.json()["detail"]
    assert not QueueWeight.objects.exists()
    client.force_login(admin_user)
    response = _put(client, f"/api/gateway/queue/weights/{member_user.pk}", {"weight": 3})
    assert response.status_code == 200 and response.json() == {"user_id": member_user.pk, "weight": 3}
    assert QueueWeight.objects.get(user=member_user).weight == 3
    assert AuditEvent.objects.filter(action="gateway.queue_weight.changed").count() == 1


@pytest.mark.parametrize("weight", [0, -1, 101])
def test_a_weight_out_of_range_says_what_to_send(client, admin_user, member_user, weight):
    client.force_login(admin_user)
    response = _put(client, f"/api/gateway/queue/weights/{member_user.pk}", {"weight": weight})
    assert response.status_code == 400, response.content
    assert "at least 1" in response.json()["detail"] or "at most 100" in response.json()["detail"]
    assert not QueueWeight.objects.exists()


def test_only_an_operator_caps_a_server(client, operator_user, member_user, server):
    client.force_login(member_user)
    response = _put(client, "/api/gateway/queue/capacity", {"server_id": server.pk, "max_in_flight": 1})
    assert response.status_code in (403, 404)
    assert not ServerCapacity.objects.exists()
    client.force_login(operator_user)
    response = _put(client, "/api/gateway/queue/capacity", {"server_id": server.pk, "max_in_flight": 4})
    assert response.status_code == 200
    assert ServerCapacity.objects.get(server=server).max_in_flight == 4
    response = _put(client, "/api/gateway/queue/capacity", {"server_id": server.pk, "max_in_flight": None})
    assert response.status_code == 200 and not ServerCapacity.objects.exists()


def test_a_cap_needs_one_target_and_a_positive_value(client, operator_user, server):
    client.force_login(operator_user)
    response = _put(client, "/api/gateway/queue/capacity", {"max_in_flight": 4})
    assert response.status_code == 400 and "either one server or one profile" in response.json()["detail"]
    response = _put(client, "/api/gateway/queue/capacity", {"server_id": server.pk, "max_in_flight": 0})
    assert response.status_code == 400 and "at least 1" in response.json()["detail"]
    assert not ServerCapacity.objects.exists()


def test_a_member_cannot_reach_the_queue_tables_in_the_django_admin(client, member_user):
    client.force_login(member_user)
    for path in ("/admin/gateway/queueweight/add/", "/admin/gateway/servercapacity/add/"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
