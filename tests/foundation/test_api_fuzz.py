"""The REST API fuzzed from its own OpenAPI document (schemathesis).

Every operation of /api/openapi.json gets generated requests, valid and invalid, as a member and as an
admin (each with a real API key), through Django's request stack in this process against the throwaway
test database, committing as a running portal does (a refused query must not poison a test transaction
on PostgreSQL). No answer may be a 5xx, and every answer's status, content type and body must be the ones
the document gives for that operation.

Destructive operations run too: on the test database they delete only what the test itself made, and
the work they queue goes to this run's own Redis with no worker to pick it up, so nothing starts.
"""
import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiKey
from accounts.services import api_key_create
from nodes.models import Node
from servers import processes, supervisor
from sparkportal import health
from sparkportal.api import api
from sparkportal.celery import node_queue
from tests.benchmarks.factories import ProfileFactory, ServerFactory, SummaryFactory
from tests.factories import UserFactory

# The coverage phase draws every boundary combination of every parameter, a count the examples bound does
# not limit; out-of-range numbers and oversized bodies have their own tests (test_bad_input.py).
CONFIG = schemathesis.Config.from_str("""
[phases.coverage]
enabled = false
""")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_dict(api.get_openapi_schema(), config=CONFIG)
APP = WSGIHandler()


class Caller:
    """A user in one role with a working API key; a new key if the fuzz revoked or narrowed the last one."""

    def __init__(self, role: str):
        self.user = UserFactory(username=f"fuzz-{role}", role=role, is_staff=role == "admin",
                                is_superuser=role == "admin")
        self.key, self.raw = None, ""

    def headers(self) -> dict:
        key = ApiKey.objects.filter(pk=self.key.pk).first() if self.key else None
        if key is None or key.revoked_at or key.scopes or key.expires_at or key.gateway_only:
            self.key, self.raw = api_key_create(owner=self.user, name=f"fuzz-{ApiKey.objects.count()}")
        return {"X-API-Key": self.raw}


@pytest.fixture(params=["member", "admin"])
def caller(request, transactional_db, monkeypatch):
    # No Celery worker runs here, so that nothing the fuzz queues (starts, downloads) is ever run; health
    # would rightly answer 503 (tests/foundation/test_health.py covers that) and wait a second for a ping.
    # Here it hears from one worker, as in a running portal.
    monkeypatch.setattr(health, "_workers", lambda timeout: [{"name": "celery@fuzz", "status": "ok"}])
    # Something to find: ids from 1 up name these, so success answers are checked as well as refusals.
    node, _ = Node.objects.update_or_create(name=django_settings.NODE_NAME,
                                            defaults={"queue": node_queue(django_settings.NODE_NAME)})
    profile = ProfileFactory(name="fuzz-profile")
    ServerFactory(node=node, profile=profile, status="ready", port=9)
    SummaryFactory(profile=profile)
    yield Caller(request.param)
    left = processes.marked(instance=supervisor.instance_id())
    if left:
        processes.kill_pids(left)
        pytest.fail(f"processes left behind by the fuzz: {left}")


@schema.parametrize()
# Bounded: 83 operations in two roles with a dozen examples each keeps the whole fuzz within a few minutes
# on two cores; derandomized, CI draws the same cases on every run (raise max_examples locally to dig
# deeper). The caller is set up once per operation and role: `Caller.headers` repairs its key per example.
@settings(max_examples=12, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_operation_answers_as_documented(case, caller):
    headers = caller.headers()
    if case.headers:  # a generated credential would be tried before the real one
        case.headers = {k: v for k, v in case.headers.items() if k.lower() not in ("authorization", "x-api-key")}
    case.call_and_validate(app=APP, headers=headers, checks=CHECKS)
