"""Pages under /models/: profiles, catalog, downloads, weights on disk. Thin: parse, call a service, render."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.selectors import require_operator
from accounts.services import client_ip
from models_registry import selectors, services
from models_registry.forms import ProfileForm
from sparkportal.exceptions import ApplicationError
from sparkportal.lib.redirects import redirect_next


def _form_errors(form: ProfileForm, exc: ApplicationError) -> None:
    errors = exc.extra.get("errors") or {}
    for field, message in errors.items():
        form.add_error(field if field in form.fields else None, message)
    if not errors:
        form.add_error(None, exc.message)


@login_required
def profile_list(request):
    node = services.node_resolve(None)
    profiles = list(selectors.profile_list(user=request.user))
    latest = selectors.latest_downloads_by_repo(node=node)
    for profile in profiles:
        profile.latest_download = latest.get(profile.repo_id)
    downloads = selectors.download_list(user=request.user)[:20]
    return render(request, "models_registry/list.html", {"profiles": profiles, "downloads": downloads, "node": node})


@login_required
def profile_new(request):
    require_operator(request.user)
    form = ProfileForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            profile = services.profile_create(actor=request.user, data=form.data_for_service(), ip=client_ip(request))
            messages.success(request, f"Profile {profile.name} created.")
            return redirect("models-detail", profile_id=profile.pk)
        except ApplicationError as exc:
            _form_errors(form, exc)
    return render(request, "models_registry/form.html", {"form": form, "title": "New model profile"})


@login_required
def profile_edit(request, profile_id: int):
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    form = ProfileForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        try:
            fresh = selectors.profile_get(user=request.user, profile_id=profile_id)
            services.profile_update(profile=fresh, actor=request.user, data=form.data_for_service(),
                                    ip=client_ip(request))
            messages.success(request, f"Profile {fresh.name} saved.")
            return redirect("models-detail", profile_id=profile_id)
        except ApplicationError as exc:
            _form_errors(form, exc)
    return render(request, "models_registry/form.html", {"form": form, "title": f"Edit {profile.name}",
                                                         "profile": profile})


@login_required
def profile_detail(request, profile_id: int):
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    node = services.node_resolve(None)
    if request.method == "POST" and request.POST.get("action") == "lookup":
        require_operator(request.user)
        try:
            snap, _joined = services.repo_lookup_request(repo_id=profile.repo_id, revision=profile.revision, node=node)
            messages.info(request, f"Looking {snap.repo_id} up on the hub from {node.name}: the estimate below "
                                   "updates when the hub answers.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect("models-detail", profile_id=profile_id)
    context = {
        **_memory_context(profile, node),
        # The start takes the first free port of the engine range; its first port is the likeliest.
        "command_line": services.profile_command_line(profile=profile, node=node,
                                                      port=settings.PORTAL_ENGINE_PORT_FIRST),
        "port_range": (settings.PORTAL_ENGINE_PORT_FIRST, settings.PORTAL_ENGINE_PORT_LAST),
        "downloads": selectors.download_list(user=request.user, repo_id=profile.repo_id)[:10],
        "problems": services.profile_problems(profile),
    }
    return render(request, "models_registry/detail.html", context)


def _memory_context(profile, node) -> dict:
    lookup = selectors.repo_lookup_for_profile(profile=profile)
    return {"profile": profile, "node": node, "estimate": services.memory_estimate(profile=profile, node=node),
            "lookup": lookup, "lookup_state": selectors.repo_lookup_state(lookup)}


@login_required
def profile_memory(request, profile_id: int):
    """The memory estimate fragment; the page fetches it again when its hub look-up reports."""
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    return render(request, "models_registry/detail.html#memory",
                  _memory_context(profile, services.node_resolve(None)))


@login_required
@require_POST
def profile_clone(request, profile_id: int):
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    try:
        clone = services.profile_clone(profile=profile, actor=request.user, name=request.POST.get("name", "").strip(),
                                       ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("models-detail", profile_id=profile_id)
    messages.success(request, f"Cloned {profile.name} as {clone.name}.")
    return redirect("models-detail", profile_id=clone.pk)


@login_required
@require_POST
def profile_delete(request, profile_id: int):
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    try:
        services.profile_delete(profile=profile, actor=request.user, ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("models-detail", profile_id=profile_id)
    messages.success(request, f"Profile {profile.name} deleted.")
    return redirect("models-list")


@login_required
@require_POST
def profile_download(request, profile_id: int):
    require_operator(request.user)
    profile = selectors.profile_get(user=request.user, profile_id=profile_id)
    try:
        download, joined = services.download_request(actor=request.user, node=services.node_resolve(None),
                                                      profile=profile, ip=client_ip(request))
        messages.success(request, f"Joined the running download of {download.repo_id}." if joined
                         else f"Download of {download.repo_id} queued on {download.node.name}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect_next(request, "models-downloads")


@login_required
def catalog(request):
    return render(request, "models_registry/catalog.html", {"rows": services.catalog_rows()})


@login_required
@require_POST
def catalog_add(request, name: str):
    require_operator(request.user)
    try:
        profile = services.catalog_add(name=name, actor=request.user, ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("models-catalog")
    messages.success(request, f"Profile {profile.name} added from the catalog.")
    return redirect("models-detail", profile_id=profile.pk)


@login_required
def downloads(request):
    rows = selectors.download_list(user=request.user)[:100]
    return render(request, "models_registry/downloads.html", {"downloads": rows})


@login_required
@require_POST
def download_action(request, download_id: int, action: str):
    require_operator(request.user)
    download = selectors.download_get(user=request.user, download_id=download_id)
    service = {"cancel": services.download_cancel, "resume": services.download_resume}.get(action)
    if service is None:
        messages.error(request, f"Unknown action {action!r}: use cancel or resume.")
        return redirect("models-downloads")
    try:
        service(download=download, actor=request.user, ip=client_ip(request))
        messages.success(request, f"Download of {download.repo_id}: {action} done.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect_next(request, "models-downloads")


def _weights_context(request, node_name: str = "") -> dict:
    overview = selectors.weights_overview(user=request.user, node_name=node_name)
    if request.user.is_portal_admin:
        for entry in overview:
            entry["token"] = selectors.hub_token_status(node=entry["node"])
    return {"overview": overview}


@login_required
def weights(request):
    services.node_resolve(None)  # this host's node exists before its first heartbeat
    return render(request, "models_registry/weights.html", _weights_context(request))


@login_required
def weights_node(request, node: str):
    """One node's section; the page fetches it again when that node's scan or a deletion reports."""
    context = _weights_context(request, node_name=node)
    if not context["overview"]:
        raise Http404(f"No node named {node!r}.")
    return render(request, "models_registry/weights.html#node", {**context, "entry": context["overview"][0]})


@login_required
@require_POST
def weights_refresh(request):
    """Ask every node (or one) for a fresh scan of its cache; the page hears back over the websocket."""
    if not request.user.is_operator:
        return HttpResponse("Only operators and admins may ask the nodes for a fresh scan.", status=403,
                            content_type="text/plain")
    names = [request.POST["node"]] if request.POST.get("node") else None
    for node in selectors.node_list(names=names):
        services.weights_scan_request(user=request.user, node=node)
    return HttpResponse(status=204)


@login_required
@require_POST
def weights_delete(request):
    require_operator(request.user)
    repo_id = request.POST.get("repo_id", "")
    try:
        node = services.node_resolve(request.POST.get("node") or None)
        _deletion, _joined = services.weights_delete_request(node=node, repo_id=repo_id, actor=request.user,
                                                           confirm=request.POST.get("confirm", ""),
                                                           ip=client_ip(request))
        messages.info(request, f"Deleting the weights of {repo_id} on {node.name}: the list updates when it is done.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("models-weights")


@login_required
@require_POST
def hub_token(request):
    node = services.node_resolve(request.POST.get("node") or None)
    try:
        if request.POST.get("action") == "clear":
            services.hub_token_clear(node=node, actor=request.user, ip=client_ip(request))
            messages.success(request, f"Hub token of {node.name} removed.")
        else:
            services.hub_token_set(node=node, token=request.POST.get("token", ""), actor=request.user,
                                   ip=client_ip(request))
            messages.success(request, f"Hub token of {node.name} saved. It will not be shown again.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("models-weights")
