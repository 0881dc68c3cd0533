"""SCIM 2.0 provisioning as identity providers push it: users, deactivation, groups mapped to role and team."""
import json

import pytest
from django.test import Client, override_settings

from accounts import services as account_services
from accounts.models import ApiKey, AuditEvent, User
from accounts.sso import services as sso_services
from accounts.teams import services as team_services
from accounts.teams.models import TeamMembership
from sparkportal.exceptions import AuthenticationFailed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("scim_on")]
TOKEN = "scim-token-for-tests-0123456789"


@pytest.fixture
def scim_on():
    with override_settings(PORTAL_SCIM_TOKEN=TOKEN, PORTAL_OIDC_ISSUER="https://idp.example.test"):
        yield


def scim(method: str, path: str, body: dict | None = None, token: str = TOKEN):
    client = Client(headers={"Authorization": f"Bearer {token}"})
    data = json.dumps(body) if body is not None else None
    response = getattr(client, method)(f"/scim/v2/{path}", data=data, content_type="application/scim+json")
    return response.status_code, (json.loads(response.content) if response.content else None)


def _create(name: str = "ann") -> dict:
    status, body = scim("post", "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                          "userName": name, "externalId": f"ext-{name}", "active": True,
                                          "emails": [{"value": f"{name}@example.test", "primary": True}]})
    assert status == 201, body
    return body


def test_a_provider_creates_finds_and_replaces_a_user():
    created = _create()
    assert created["userName"] == "ann" and created["active"] is True
    status, found = scim("get", 'Users?filter=userName eq "ann"')
    assert status == 200 and found["totalResults"] == 1 and found["Resources"][0]["id"] == created["id"]
    assert scim("get", 'Users?filter=userName eq "nobody"')[1]["totalResults"] == 0
    status, replaced = scim("put", f"Users/{created['id']}", {"userName": "ann", "active": True,
                                                              "emails": [{"value": "new@example.test"}]})
    assert status == 200 and replaced["emails"][0]["value"] == "new@example.test"
    assert not User.objects.get(username="ann").has_usable_password()
    assert AuditEvent.objects.filter(action="accounts.scim.user_created", actor_name="scim").exists()


def test_a_duplicate_user_and_bad_input_get_scim_errors_that_say_what_to_fix():
    _create()
    status, body = scim("post", "Users", {"userName": "ann"})
    assert status == 409 and body["scimType"] == "uniqueness" and "exists already" in body["detail"]
    status, body = scim("get", 'Users?filter=name.familyName co "x"')
    assert status == 400 and body["scimType"] == "invalidFilter" and 'userName eq' in body["detail"]
    status, body = scim("patch", f"Users/{User.objects.get(username='ann').pk}", {"Operations": "nope"})
    assert status == 400 and body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    status, body = scim("patch", f"Users/{User.objects.get(username='ann').pk}",
                        {"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]})
    assert status == 400 and "true or false" in body["detail"]


def test_without_the_token_nothing_is_provisioned(member_user):
    assert scim("get", "Users", token="wrong")[0] == 401
    assert scim("post", "Users", {"userName": "eve"}, token="")[0] == 401
    _key, raw = account_services.api_key_create(owner=member_user, name="k")
    assert scim("get", "Users", token=raw)[0] == 401  # a portal API key is no SCIM token
    with override_settings(PORTAL_SCIM_TOKEN=""):
        assert scim("get", "Users")[0] == 404
    assert not User.objects.filter(username="eve").exists()


def test_patch_active_false_deactivates_and_the_key_is_refused_on_the_next_request(
        django_capture_on_commit_callbacks):
    created = _create()
    ann = User.objects.get(pk=created["id"])
    _key, raw = account_services.api_key_create(owner=ann, name="laptop")
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/accounts/me").status_code == 200
    # Entra ID's form: no path, a value object, "False" as a string. The commit bumps the auth generation.
    with django_capture_on_commit_callbacks(execute=True):
        status, body = scim("patch", f"Users/{ann.pk}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "value": {"active": "False"}}]})
    assert status == 200 and body["active"] is False
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/accounts/me").status_code == 401
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        account_services.api_key_authenticate(raw=raw)
    assert AuditEvent.objects.filter(action="accounts.scim.user_deactivated").exists()


def test_delete_revokes_every_key_and_keeps_the_account_deactivated():
    created = _create()
    ann = User.objects.get(pk=created["id"])
    key, _raw = account_services.api_key_create(owner=ann, name="laptop")
    assert scim("delete", f"Users/{ann.pk}")[0] == 204
    assert scim("get", f"Users/{ann.pk}")[0] == 404
    ann.refresh_from_db()
    assert not ann.is_active and ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_groups_pushed_over_scim_grant_and_take_the_mapped_role_and_team(admin_user):
    team = team_services.team_save(actor=admin_user, name="vision")
    sso_services.mapping_save(actor=admin_user, group="ML Leads", role="operator", team=team, team_admin=True)
    ann, bob = _create("ann"), _create("bob")
    status, group = scim("post", "Groups", {"displayName": "ML Leads", "members": [{"value": ann["id"]}]})
    assert status == 201 and [m["display"] for m in group["members"]] == ["ann"]
    assert User.objects.get(pk=ann["id"]).role == "operator"
    assert TeamMembership.objects.get(user_id=ann["id"], team=team).is_team_admin
    status, group = scim("patch", f"Groups/{group['id']}", {"Operations": [
        {"op": "add", "path": "members", "value": [{"value": bob["id"]}]},
        {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'}]})
    assert status == 200 and [m["display"] for m in group["members"]] == ["bob"]
    assert User.objects.get(pk=ann["id"]).role == "member"
    assert not TeamMembership.objects.filter(user_id=ann["id"]).exists()
    assert User.objects.get(pk=bob["id"]).role == "operator"
    assert scim("get", 'Groups?filter=displayName eq "ML Leads"')[1]["totalResults"] == 1
    assert scim("delete", f"Groups/{group['id']}")[0] == 204
    assert User.objects.get(pk=bob["id"]).role == "member"


def test_a_provisioned_user_is_linked_at_the_first_sso_login():
    created = _create()
    user = sso_services.sso_login(claims={"sub": "subject-1", "preferred_username": "ann"})
    assert str(user.pk) == created["id"]


def test_malformed_requests_get_scim_errors_never_a_crash():
    client = Client(headers={"Authorization": f"Bearer {TOKEN}"})
    broken = client.post("/scim/v2/Users", data=b"{not json", content_type="application/scim+json")
    assert broken.status_code == 400 and json.loads(broken.content)["scimType"] == "invalidSyntax"
    listed = client.post("/scim/v2/Users", data=b"[1, 2]", content_type="application/scim+json")
    assert listed.status_code == 400 and "JSON object" in json.loads(listed.content)["detail"]
    assert scim("post", "Users", {"userName": "x" * 151})[0] == 400
    assert scim("get", "Users/99999")[0] == 404 and scim("get", "Users/abc")[0] == 404
    assert scim("get", "Users?startIndex=x")[0] == 400
    status, body = scim("post", "Groups", {"displayName": "g", "members": [{"value": "424242"}]})
    assert status == 400 and "No provisioned user with id 424242" in body["detail"]
    created = _create()
    assert scim("post", f"Users/{created['id']}", {})[0] == 405
