"""Bad input through daphne: numbers past 64 bits, bodies that do not parse or are too large.

Every answer is a 4xx with JSON `{detail, code}` that says what to send; never a 500 or an HTML page.
"""
import httpx
import pytest

from accounts import services

BIG = str(2**70)


@pytest.fixture
def api(asgi_server, admin_user):
    _key, raw = services.api_key_create(owner=admin_user, name="cli")
    with httpx.Client(base_url=f"{asgi_server.url}/api", headers={"X-API-Key": raw}, timeout=30) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code and body["detail"], body
    return body


def test_a_limit_or_offset_past_64_bits_is_a_422_naming_the_bound(api):
    for path in ("/servers/", "/accounts/keys", "/accounts/audit", "/models/profiles", "/models/downloads",
                 "/benchmarks/runs", "/classifier/jobs/"):
        for param in ("limit", "offset"):
            body = assert_error(api.get(path, params={param: BIG}), 422, "validation_error")
            assert body["detail"][0]["loc"][-1] == param
            assert "less than or equal to" in body["detail"][0]["msg"]


def test_an_id_past_64_bits_is_a_4xx_saying_what_fits(api):
    body = assert_error(api.get(f"/benchmarks/profiles/{BIG}/history"), 400, "out_of_range")
    assert "9223372036854775807" in body["detail"]
    # The same answer whichever database runs: SQLite cannot bind the number, PostgreSQL finds nothing.
    assert_error(api.get(f"/servers/{BIG}"), 400, "out_of_range")


def test_pages_answer_404_for_an_id_past_64_bits(asgi_server, admin_user):
    with httpx.Client(base_url=asgi_server.url, timeout=30) as client:
        login = client.get("/accounts/login/")
        client.post("/accounts/login/", data={"username": "alice", "password": "pw-Secret-123",
                                              "csrfmiddlewaretoken": login.cookies["csrftoken"]})
        for path in (f"/servers/{BIG}/", f"/models/{BIG}/", f"/benchmarks/runs/{BIG}/", f"/classifier/jobs/{BIG}/"):
            assert client.get(path).status_code == 404, path


def test_a_body_that_does_not_parse_says_to_send_json(api):
    body = assert_error(api.post("/servers/", content=b"{not json", headers={"Content-Type": "application/json"}),
                        400, "invalid_body")
    assert "application/json" in body["detail"]


def test_an_oversized_body_is_a_json_413(api):
    response = api.post("/servers/", content=b"x" * (3 * 1024 * 1024), headers={"Content-Type": "application/json"})
    body = assert_error(response, 413, "too_large")
    assert "bytes" in body["detail"]


def test_no_route_and_a_wrong_method_answer_json_too(api):
    body = assert_error(api.get("/no-such-thing"), 404, "not_found")
    assert "/api/docs" in body["detail"]
    response = api.put("/servers/", json={})
    body = assert_error(response, 405, "method_not_allowed")
    assert "GET" in body["detail"] and "POST" in response.headers["allow"]
