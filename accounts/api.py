from datetime import date

from ninja import Router, Status
from ninja.pagination import paginate

from accounts import schemas, selectors, services

router = Router()
ERRORS = {400: schemas.ErrorOut, 401: schemas.ErrorOut, 403: schemas.ErrorOut, 404: schemas.ErrorOut}


@router.get("/me", response=schemas.MeOut)
def me(request):
    return request.user


@router.get("/keys", response=list[schemas.ApiKeyOut])
@paginate
def key_list(request, everyone: bool = False):
    return selectors.api_key_list_visible(user=request.user, everyone=everyone)


@router.post("/keys", response={201: schemas.ApiKeyCreatedOut, **ERRORS})
def key_create(request, payload: schemas.ApiKeyIn):
    key, raw = services.api_key_create(owner=request.user, name=payload.name, scopes=payload.scopes,
                                       expires_at=payload.expires_at, ip=services.client_ip(request),
                                       via=getattr(request, "api_key", None), team_id=payload.team_id)
    key.key = raw
    return Status(201, key)


@router.patch("/keys/{key_id}", response={200: schemas.ApiKeyOut, **ERRORS})
def key_update(request, key_id: int, payload: schemas.ApiKeyPatch):
    key = selectors.api_key_get_visible(user=request.user, key_id=key_id)
    given = payload.dict(exclude_unset=True)
    scopes = given["scopes"] if given.get("scopes") is not None else key.scopes
    return services.api_key_update(key=key, actor=request.user, scopes=scopes,
                                   expires_at=given.get("expires_at", key.expires_at),
                                   ip=services.client_ip(request), via=getattr(request, "api_key", None))


@router.delete("/keys/{key_id}", response={200: schemas.ApiKeyOut, **ERRORS})
def key_revoke(request, key_id: int):
    key = selectors.api_key_get_visible(user=request.user, key_id=key_id)
    return services.api_key_revoke(key=key, actor=request.user, ip=services.client_ip(request),
                                   via=getattr(request, "api_key", None))


@router.get("/audit", response=list[schemas.AuditEventOut])
@paginate
def audit_list(request, actor: str = "", action: str = "", day_from: date | None = None,
               day_to: date | None = None):
    return selectors.audit_event_list(user=request.user, actor=actor, action=action,
                                      day_from=day_from, day_to=day_to)
