"""REST API of the single sign-on group mappings (portal admins)."""
from django.shortcuts import get_object_or_404
from ninja import Router, Status
from ninja.pagination import paginate

from accounts import selectors as account_selectors
from accounts.schemas import ErrorOut
from accounts.services import client_ip
from accounts.sso import schemas, services
from accounts.sso.models import SsoGroupMapping
from accounts.teams.models import Team

router = Router()
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}


def _team(team_id: int | None) -> Team | None:
    return get_object_or_404(Team, pk=team_id) if team_id is not None else None


@router.get("/mappings", response={200: list[schemas.MappingOut], **ERRORS})
@paginate
def mapping_list(request):
    account_selectors.require_admin(request.user)
    return SsoGroupMapping.objects.select_related("team")


@router.post("/mappings", response={201: schemas.MappingOut, **ERRORS})
def mapping_create(request, payload: schemas.MappingIn):
    account_selectors.require_admin(request.user)
    mapping = services.mapping_save(actor=request.user, group=payload.group, role=payload.role,
                                    team=_team(payload.team_id), team_admin=payload.team_admin, ip=client_ip(request))
    return Status(201, mapping)


@router.put("/mappings/{mapping_id}", response={200: schemas.MappingOut, **ERRORS})
def mapping_update(request, mapping_id: int, payload: schemas.MappingIn):
    account_selectors.require_admin(request.user)
    mapping = get_object_or_404(SsoGroupMapping, pk=mapping_id)
    return services.mapping_save(actor=request.user, mapping=mapping, group=payload.group, role=payload.role,
                                 team=_team(payload.team_id), team_admin=payload.team_admin, ip=client_ip(request))


@router.delete("/mappings/{mapping_id}", response={204: None, **ERRORS})
def mapping_delete(request, mapping_id: int):
    account_selectors.require_admin(request.user)
    services.mapping_delete(actor=request.user, mapping=get_object_or_404(SsoGroupMapping, pk=mapping_id),
                            ip=client_ip(request))
    return Status(204, None)
