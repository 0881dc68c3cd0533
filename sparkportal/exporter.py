"""The portal's own Prometheus exporter at GET /metrics, for teams that run a real Prometheus.

Apps add collectors in their AppConfig.ready() with `register()`; each collector reads the
database when scraped, so every web process answers with the same numbers whichever worker
wrote them.
"""
import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

REGISTRY = CollectorRegistry(auto_describe=False)
_registered: set[type] = set()


def register(collector) -> None:
    """Add a collector once per process (ready() may run again in tests)."""
    if type(collector) in _registered:
        return
    _registered.add(type(collector))
    REGISTRY.register(collector)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.PORTAL_PROMETHEUS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return HttpResponse("Send `Authorization: Bearer <PORTAL_PROMETHEUS_TOKEN>` to read the portal's "
                                "metrics (bearer_token in the Prometheus scrape config).\n",
                                status=401, content_type="text/plain; charset=utf-8")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
