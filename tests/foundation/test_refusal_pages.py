"""Pages above a member's role answer 403 inside the page layout, with the words the API uses."""
import pytest
from django.test import Client

from models_registry.models import ModelProfile
from nodes.models import Node
from servers.models import Server

pytestmark = pytest.mark.django_db

OPERATOR_WORDS = "Only operators and admins may do this: ask an admin for the operator role."
ADMIN_WORDS = "Only admins may do this: ask an admin of the portal."


def test_a_member_gets_the_apis_words_inside_the_layout(member_user):
    profile = ModelProfile.objects.create(name="coder", repo_id="Qwen/Qwen3-0.6B")
    server = Server.objects.create(node=Node.objects.create(name="spark9", queue="node.spark9"),
                                   served_model_name="coder", port=8101, status="stopped")
    client = Client()
    client.force_login(member_user)
    pages = {"/models/new/": OPERATOR_WORDS, f"/models/{profile.pk}/edit/": OPERATOR_WORDS,
             f"/servers/{server.pk}/log/": OPERATOR_WORDS, "/usage/team/": None, "/accounts/audit/": ADMIN_WORDS}
    for url, words in pages.items():
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 403, url
        assert '<nav class="topnav">' in html and "mia · Member" in html, url
        if words:
            assert words in html, url
