from django.http import JsonResponse
from ninja import Router, Schema

from accounts.auth import default_auth
from sparkportal import health

router = Router()


class WorkerOut(Schema):
    name: str
    status: str


class HealthOut(Schema):
    status: str
    database: str
    redis: str
    workers: list[WorkerOut]


def _anonymous(request):
    return True


@router.get("/version", auth=[*default_auth(), _anonymous],
            summary="Portal version and who is calling (works with or without credentials)")
def version_view(request):
    user = getattr(request, "user", None)
    return {"version": health.VERSION, "user": user.get_username() if getattr(user, "is_authenticated", False)
            else None}


@router.get("/health", auth=None, response={200: HealthOut, 503: HealthOut},
            summary="Liveness of database, Redis and workers (200 only when all are up, else 503)")
def health_view(request):
    report = health.health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
