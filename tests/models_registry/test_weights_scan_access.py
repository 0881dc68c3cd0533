"""A scan walks a node's whole cache: only operators and admins may ask for one, on the API and the page."""
import pytest
from django.conf import settings
from django.test import Client

from models_registry.models import NodeWeights
from nodes.models import Node
from sparkportal.celery import node_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def nodes(db):
    return [Node.objects.create(name=settings.NODE_NAME, queue=node_queue(settings.NODE_NAME)),
            Node.objects.create(name="gpu9", queue=node_queue("gpu9"))]


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_member_cannot_make_the_nodes_scan(nodes, member_user):
    client = _as(member_user)
    api = client.post("/api/models/weights/scan", {}, content_type="application/json")
    assert api.status_code == 403 and "operators" in api.json()["detail"]
    page = client.post("/models/weights/refresh/")
    assert page.status_code == 403 and b"Only operators" in page.content
    assert not NodeWeights.objects.filter(requested_at__isnull=False).exists()
    assert b'id="weights-refresh"' not in client.get("/models/weights/").content


def test_an_operator_can(nodes, operator_user, django_capture_on_commit_callbacks):
    client = _as(operator_user)
    with django_capture_on_commit_callbacks():  # the scan tasks are not sent: no worker listens here
        api = client.post("/api/models/weights/scan", {}, content_type="application/json")
    assert api.status_code == 202 and sorted(api.json()["requested"]) == sorted(n.name for n in nodes)
    assert b'id="weights-refresh"' in client.get("/models/weights/").content
