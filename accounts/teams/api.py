"""REST API of teams: portal admins create teams and members; team admins set members' shares and keys."""
from django.shortcuts import get_object_or_404
from ninja import Router, Status
from ninja.pagination import paginate

from accounts import selectors as account_selectors
from accounts.models import User
from accounts.schemas import ErrorOut
from accounts.services import client_ip
from accounts.teams import schemas, selectors, services

router = Router()
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}


@router.get("/", response=list[schemas.TeamOut])
@paginate
def team_list(request):
    return selectors.team_list_visible(user=request.user)


@router.post("/", response={201: schemas.TeamOut, **ERRORS})
def team_create(request, payload: schemas.TeamIn):
    account_selectors.require_admin(request.user)
    team = services.team_save(actor=request.user, ip=client_ip(request), **payload.dict())
    return Status(201, selectors.team_get_visible(user=request.user, team_id=team.pk))


@router.get("/{team_id}", response={200: schemas.TeamOut, **ERRORS})
def team_get(request, team_id: int):
    return selectors.team_get_visible(user=request.user, team_id=team_id)


@router.put("/{team_id}", response={200: schemas.TeamOut, **ERRORS})
def team_update(request, team_id: int, payload: schemas.TeamIn):
    team = selectors.team_get_visible(user=request.user, team_id=team_id)
    services.team_save(actor=request.user, team=team, ip=client_ip(request), **payload.dict())
    return selectors.team_get_visible(user=request.user, team_id=team_id)


@router.delete("/{team_id}", response={204: None, **ERRORS})
def team_delete(request, team_id: int):
    team = selectors.team_get_visible(user=request.user, team_id=team_id)
    services.team_delete(actor=request.user, team=team, ip=client_ip(request))
    return Status(204, None)


@router.post("/{team_id}/members", response={201: schemas.MemberOut, **ERRORS})
def member_add(request, team_id: int, payload: schemas.MemberIn):
    account_selectors.require_admin(request.user)
    team = selectors.team_get_visible(user=request.user, team_id=team_id)
    user = get_object_or_404(User, username=payload.username)
    return Status(201, services.team_member_add(actor=request.user, team=team, user=user,
                                                is_team_admin=payload.is_team_admin, ip=client_ip(request)))


@router.delete("/{team_id}/members/{user_id}", response={204: None, **ERRORS})
def member_remove(request, team_id: int, user_id: int):
    account_selectors.require_admin(request.user)
    team = selectors.team_get_visible(user=request.user, team_id=team_id)
    services.team_member_remove(actor=request.user, membership=selectors.membership_get(team=team, user_id=user_id),
                                ip=client_ip(request))
    return Status(204, None)


@router.patch("/{team_id}/members/{user_id}", response={200: schemas.MemberOut, **ERRORS})
def member_limits(request, team_id: int, user_id: int, payload: schemas.MemberLimitsIn):
    team = selectors.team_get_managed(user=request.user, team_id=team_id)
    membership = selectors.membership_get(team=team, user_id=user_id)
    return services.team_member_limits_set(actor=request.user, membership=membership, ip=client_ip(request),
                                           **payload.dict())


@router.get("/{team_id}/keys", response={200: list[schemas.TeamKeyOut], **ERRORS})
@paginate
def member_keys(request, team_id: int):
    return selectors.team_member_keys(team=selectors.team_get_managed(user=request.user, team_id=team_id))


@router.delete("/{team_id}/keys/{key_id}", response={200: schemas.TeamKeyOut, **ERRORS})
def member_key_revoke(request, team_id: int, key_id: int):
    team = selectors.team_get_managed(user=request.user, team_id=team_id)
    key = selectors.team_member_key_get(team=team, key_id=key_id)
    return services.team_member_key_revoke(actor=request.user, team=team, key=key, ip=client_ip(request))


@router.get("/{team_id}/usage", response={200: schemas.TeamUsageOut, **ERRORS})
def team_usage(request, team_id: int):
    return selectors.team_usage_month(team=selectors.team_get_visible(user=request.user, team_id=team_id))
