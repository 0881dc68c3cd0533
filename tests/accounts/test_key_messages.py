"""A refused key says what is wrong with it; the Models field takes served names only."""
import pytest
from django.test import Client

from accounts import services
from sparkportal.exceptions import AuthenticationFailed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("raw, words", [
    ("sk-sp-garbage", "it has only 13 characters where a portal key has 46"),
    ("sk-xx-" + "a" * 40, "portal keys start with 'sk-sp-' and this one does not"),
    ("sk-sp-" + "a" * 20 + " " + "b" * 19, "contains characters no portal key has"),
])
def test_a_malformed_key_is_refused_saying_what_is_wrong(raw, words):
    with pytest.raises(AuthenticationFailed, match="Malformed API key") as refused:
        services.api_key_authenticate(raw=raw)
    assert words in refused.value.message and raw not in refused.value.message


def test_the_models_field_refuses_control_characters_and_offers_served_names(member_user):
    client = Client()
    client.force_login(member_user)
    page = client.get("/accounts/keys/").content.decode()
    assert 'list="served-models"' in page and "js/served_models.js" in page
    refused = client.post("/accounts/keys/", {"name": "ide", "scopes": "coder, bad\tname"}).content.decode()
    assert "is not a served model name" in refused and not member_user.api_keys.exists()
    client.post("/accounts/keys/", {"name": "ide", "scopes": "coder, Qwen/Qwen3-0.6B"})
    assert member_user.api_keys.get().scopes == ["Qwen/Qwen3-0.6B", "coder"]
