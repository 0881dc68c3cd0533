from django.http import JsonResponse
from ninja import Router

from sparkportal import health

router = Router()


@router.get("/health", auth=None, summary="Liveness of database, Redis and workers (200 only when all are up)")
def health_view(request):
    report = health.health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
