"""REST API under /api/models/: profiles, catalog, downloads, weights on disk, hub tokens."""
from ninja import Router, Status
from ninja.pagination import paginate

from accounts.selectors import require_admin, require_operator
from accounts.services import client_ip
from engines import redact
from models_registry import schemas, selectors, services
from sparkportal.exceptions import ApplicationError

router = Router()
ERRORS = {400: schemas.ErrorOut, 401: schemas.ErrorOut, 403: schemas.ErrorOut, 404: schemas.ErrorOut,
          409: schemas.ErrorOut}


@router.get("/profiles", response=list[schemas.ProfileOut])
@paginate
def profile_list(request, engine: str = "", task: str = "", search: str = ""):
    return selectors.profile_list(user=request.user, engine=engine, task=task, search=search)


@router.post("/profiles", response={201: schemas.ProfileOut, **ERRORS})
def profile_create(request, payload: schemas.ProfileIn):
    require_operator(request.user)
    profile = services.profile_create(actor=request.user, data=payload.dict(), ip=client_ip(request))
    return Status(201, profile)


@router.get("/profiles/{profile_id}", response={200: schemas.ProfileOut, **ERRORS})
def profile_detail(request, profile_id: int):
    return selectors.profile_get(user=request.user, profile_id=profile_id)


@router.patch("/profiles/{profile_id}", response={200: schemas.ProfileOut, **ERRORS})
def profile_update(request, profile_id: int, payload: schemas.ProfilePatch):
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    return services.profile_update(profile=profile, actor=request.user, data=payload.dict(exclude_unset=True),
                                   ip=client_ip(request))


@router.delete("/profiles/{profile_id}", response={204: None, **ERRORS})
def profile_delete(request, profile_id: int):
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    services.profile_delete(profile=profile, actor=request.user, ip=client_ip(request))
    return Status(204, None)


@router.post("/profiles/{profile_id}/clone", response={201: schemas.ProfileOut, **ERRORS})
def profile_clone(request, profile_id: int, payload: schemas.CloneIn):
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    return Status(201, services.profile_clone(profile=profile, actor=request.user, name=payload.name,
                                              ip=client_ip(request)))


@router.get("/profiles/{profile_id}/command", response={200: schemas.CommandOut, **ERRORS})
def profile_command(request, profile_id: int, node: str = "", port: int = 8000):
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    target = services.node_resolve(node or None)
    argv = services.profile_shown_argv(profile=profile, node=target, port=port)
    line = services.profile_command_line(profile=profile, node=target, port=port)
    return {"argv": redact.argv_redact(argv), "command_line": redact.text_redact(line)}


@router.get("/profiles/{profile_id}/memory", response={200: dict, **ERRORS})
def profile_memory(request, profile_id: int, node: str = ""):
    """Memory estimate from what is known now (disk, an earlier hub look-up, the catalog); never calls the hub.
    POST .../lookup asks the hub, on the node's worker."""
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    target = services.node_resolve(node or None)
    return services.memory_estimate(profile=profile, node=target).as_dict()


def _lookup_out(snap, joined: bool = False) -> dict:
    state = selectors.repo_lookup_state(snap)
    return {"id": snap.pk, "repo_id": snap.repo_id, "revision": snap.revision, "status": state["status"],
            "error": state["error"], "error_code": "lost" if state["status"] != snap.lookup_status
            else snap.lookup_error_code, "node": snap.lookup_node.name if snap.lookup_node_id else None,
            "commit": snap.commit, "looked_up_at": snap.looked_up_at, "joined": joined}


@router.post("/profiles/{profile_id}/lookup", response={202: schemas.LookupOut, **ERRORS})
def profile_lookup(request, profile_id: int, node: str = ""):
    """Queue a hub look-up (file sizes, config.json) on the node's worker; follow GET /lookups/{id} or the
    websocket group models.lookup.<id>."""
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    if profile.source != "hub":
        raise ApplicationError(f"Profile {profile.name} uses a local folder: there is nothing to look up on the hub.",
                               code="nothing_to_look_up")
    snap, joined = services.repo_lookup_request(repo_id=profile.repo_id, revision=profile.revision,
                                                node=services.node_resolve(node or None))
    return Status(202, _lookup_out(snap, joined))


@router.get("/lookups/{lookup_id}", response={200: schemas.LookupOut, **ERRORS})
def lookup_detail(request, lookup_id: int):
    return _lookup_out(selectors.repo_lookup_get(user=request.user, snapshot_id=lookup_id))


@router.post("/profiles/{profile_id}/download", response={200: schemas.DownloadOut, 201: schemas.DownloadOut,
                                                          **ERRORS})
def profile_download(request, profile_id: int, payload: schemas.DownloadIn):
    """Start downloading the profile's weights on a node (this host's by default); joins a running one."""
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    download, joined = services.download_request(actor=request.user, node=services.node_resolve(payload.node or None),
                                                 profile=profile, ip=client_ip(request))
    download.joined = joined
    return Status(200 if joined else 201, download)


@router.post("/profiles/{profile_id}/download-nodes", response={200: list[schemas.DownloadOut], **ERRORS})
def profile_download_nodes(request, profile_id: int, payload: schemas.DownloadNodesIn):
    """Download the profile's weights on several nodes (every node by default), as a multi-node server needs."""
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    out = []
    for download, joined in services.download_request_nodes(actor=request.user, profile=profile,
                                                             node_names=payload.nodes, ip=client_ip(request)):
        download.joined = joined
        out.append(download)
    return out


@router.get("/catalog", response=list[schemas.CatalogOut])
def catalog_list(request):
    return services.catalog_rows()


@router.post("/catalog/{name}/add", response={201: schemas.ProfileOut, **ERRORS})
def catalog_add(request, name: str, payload: schemas.CatalogAddIn | None = None):
    require_operator(request.user)
    profile = services.catalog_add(name=name, actor=request.user,
                                   profile_name=payload.profile_name if payload else None, ip=client_ip(request))
    return Status(201, profile)


@router.get("/downloads", response=list[schemas.DownloadOut])
@paginate
def download_list(request, status: str = "", node: str = "", repo_id: str = ""):
    return selectors.download_list(user=request.user, status=status, node=node, repo_id=repo_id)


@router.post("/downloads", response={200: schemas.DownloadOut, 201: schemas.DownloadOut, **ERRORS})
def download_create(request, payload: schemas.RepoDownloadIn):
    require_operator(request.user)
    download, joined = services.download_request(actor=request.user, node=services.node_resolve(payload.node or None),
                                                 repo_id=payload.repo_id, revision=payload.revision,
                                                 ip=client_ip(request))
    download.joined = joined
    return Status(200 if joined else 201, download)


@router.get("/downloads/{download_id}", response={200: schemas.DownloadOut, **ERRORS})
def download_detail(request, download_id: int):
    return selectors.download_get(user=request.user, download_id=download_id)


@router.post("/downloads/{download_id}/cancel", response={200: schemas.DownloadOut, **ERRORS})
def download_cancel(request, download_id: int):
    require_operator(request.user)
    download = selectors.download_get(user=request.user, download_id=download_id)
    return services.download_cancel(download=download, actor=request.user, ip=client_ip(request))


@router.post("/downloads/{download_id}/resume", response={200: schemas.DownloadOut, **ERRORS})
def download_resume(request, download_id: int):
    require_operator(request.user)
    download = selectors.download_get(user=request.user, download_id=download_id)
    return services.download_resume(download=download, actor=request.user, ip=client_ip(request))


@router.get("/weights", response={200: list[schemas.WeightsNodeOut], **ERRORS})
def weights_list(request, node: str = ""):
    """Each node's latest scan of its cache (POST /weights/scan asks for fresh ones)."""
    if node:
        services.node_resolve(node)
    return selectors.weights_overview(user=request.user, node_name=node)


@router.post("/weights/scan", response={202: schemas.WeightsScanOut, **ERRORS})
def weights_scan(request, payload: schemas.WeightsScanIn):
    require_operator(request.user)
    nodes = [services.node_resolve(payload.node)] if payload.node else list(selectors.node_list())
    for target in nodes:
        services.weights_scan_request(user=request.user, node=target)
    return Status(202, {"requested": [n.name for n in nodes]})


@router.post("/weights/delete", response={202: schemas.WeightsDeletionOut, **ERRORS})
def weights_delete(request, payload: schemas.WeightsDeleteIn):
    """Queue deleting a repo's weights on a node (409 while a server there uses them); follow
    GET /weights/deletions/{id} or the websocket group models.weights."""
    require_operator(request.user)
    deletion, joined = services.weights_delete_request(node=services.node_resolve(payload.node or None),
                                                       repo_id=payload.repo_id, confirm=payload.confirm,
                                                       actor=request.user, ip=client_ip(request))
    deletion.joined = joined
    return Status(202, deletion)


@router.get("/weights/deletions/{deletion_id}", response={200: schemas.WeightsDeletionOut, **ERRORS})
def weights_deletion_detail(request, deletion_id: int):
    return selectors.weights_deletion_get(user=request.user, deletion_id=deletion_id)


@router.get("/nodes/{node}/hub-token", response={200: schemas.HubTokenOut, **ERRORS})
def hub_token_get(request, node: str):
    require_admin(request.user)
    return selectors.hub_token_status(node=services.node_resolve(node))


@router.put("/nodes/{node}/hub-token", response={200: schemas.HubTokenOut, **ERRORS})
def hub_token_set(request, node: str, payload: schemas.HubTokenIn):
    target = services.node_resolve(node)
    services.hub_token_set(node=target, token=payload.token, actor=request.user, ip=client_ip(request))
    return selectors.hub_token_status(node=target)


@router.delete("/nodes/{node}/hub-token", response={200: schemas.HubTokenOut, **ERRORS})
def hub_token_clear(request, node: str):
    target = services.node_resolve(node)
    services.hub_token_clear(node=target, actor=request.user, ip=client_ip(request))
    return selectors.hub_token_status(node=target)
