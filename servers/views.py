"""Pages under /servers/: nodes with their budget, the start form with the planner's preview, server detail."""
import shlex

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.template.loader import select_template
from django.views.decorators.http import require_POST

from accounts.selectors import require_operator
from accounts.services import client_ip
from engines import redact
from servers import logs, selectors, services
from servers.forms import GroupOnDemandForm, GroupPreflightForm, ServerStartForm
from sparkportal.exceptions import ApplicationError
from sparkportal.lib.redirects import redirect_next


def _list_context(request, form=None) -> dict:
    return {"nodes": selectors.node_overview(), "servers": selectors.server_list_current(user=request.user),
            "form": form or ServerStartForm(), "can_operate": request.user.is_operator}


@login_required
def server_list(request):
    template = "servers/list.html#server-table" if request.htmx and request.GET.get("part") == "table" \
        else "servers/list.html"
    return render(request, template, _list_context(request))


@login_required
def server_plan(request):
    """The planner's answer for the start form's current values (htmx fragment)."""
    form = ServerStartForm(request.GET)
    plan = proposed_port = None
    if form.is_valid():
        data = form.cleaned_data
        plan = services.server_plan(node=data["node"], profile=data["profile"],
                                    gpu_memory_utilization=data["gpu_memory_utilization"])
        try:
            proposed_port = data["port"] or services.propose_port(data["node"])
        except ApplicationError:
            proposed_port = None
    # oob: the fragment also swaps the Start button, disabled while the plan says the engine is missing.
    return render(request, "servers/list.html#plan", {"plan": plan, "form": form, "proposed_port": proposed_port,
                                                      "oob": True})


@login_required
@require_POST
def server_start(request):
    require_operator(request.user)
    form = ServerStartForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        if data["profile"].node_count > 1:
            return _start_group(request, form, data)
        try:
            server = services.server_start(user=request.user, profile=data["profile"], node=data["node"],
                                           port=data["port"], gpu_memory_utilization=data["gpu_memory_utilization"],
                                           restart_policy=data["restart_policy"] or "never",
                                           allow_replica=data["allow_replica"], ip=client_ip(request))
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Server #{server.pk} ({server.served_model_name}) is queued on "
                                      f"{server.node.name}:{server.port}.")
            return redirect("servers-detail", server_id=server.pk)
    return render(request, "servers/list.html", _list_context(request, form))


def _start_group(request, form, data):
    try:
        group = services.group_start(user=request.user, profile=data["profile"], nodes=data["nodes"] or None,
                                     gpu_memory_utilization=data["gpu_memory_utilization"],
                                     restart_policy=data["restart_policy"] or "never",
                                     allow_replica=data["allow_replica"], ip=client_ip(request))
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return render(request, "servers/list.html", _list_context(request, form))
    leader = group.ranks.select_related("node").get(rank=0)
    messages.success(request, f"{group.served_model_name} is queued across {group.node_count} nodes (group "
                              f"#{group.pk}, leader on {leader.node.name}).")
    return redirect("servers-detail", server_id=leader.pk)


@login_required
@require_POST
def group_preflight(request):
    """The Preflight button of the start form: every node of a multi-node placement reports its network, nothing is
    started. An htmx click gets the reports' fragment; a plain POST the whole page with them."""
    require_operator(request.user)
    form = GroupPreflightForm(request.POST)
    result, error = None, ""
    if not form.is_valid():
        error = " ".join(e for errors in form.errors.values() for e in errors)
    else:
        try:
            result = services.group_preflight(user=request.user, profile=form.cleaned_data["profile"],
                                              nodes=form.cleaned_data["nodes"] or None)
        except ApplicationError as exc:
            error = exc.message
    context = {"preflight": result, "preflight_error": error}
    if request.htmx:
        return render(request, "servers/list.html#preflight", context)
    return render(request, "servers/list.html", {**_list_context(request, ServerStartForm(request.POST)), **context})


@login_required
@require_POST
def group_on_demand(request, group_id: int):
    """The group panel's "load on demand / unload when idle" form (operators); back to the leader's page."""
    require_operator(request.user)
    group = selectors.group_get_visible(user=request.user, group_id=group_id)
    leader = group.ranks.get(rank=0)
    form = GroupOnDemandForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unload after a whole number of idle minutes, or leave it empty: "
                       + " ".join(form.errors.get("unload_idle_minutes", [])))
        return redirect_next(request, "servers-detail", server_id=leader.pk)
    data = form.cleaned_data
    try:
        group = services.group_on_demand_set(user=request.user, group=group, load_on_demand=data["load_on_demand"],
                                             unload_idle_minutes=data["unload_idle_minutes"], ip=client_ip(request))
        messages.success(request, f"Group #{group.pk}: {_policy_words(group)}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect_next(request, "servers-detail", server_id=leader.pk)


def _policy_words(group) -> str:
    load = "loads on demand" if group.load_on_demand else "starts only by an operator"
    idle = f"unloads after {group.unload_idle_minutes} idle min" if group.unload_idle_minutes else "stays loaded"
    return f"{load}, {idle}"


def _rank_logs(group, *, but: int) -> list[dict]:
    """The last lines of every other rank of a group, each read on its own node."""
    out = []
    for rank in group.ranks.select_related("node").exclude(pk=but).order_by("rank"):
        try:
            out.append({"server": rank, "lines": logs.server_log_lines(server=rank, lines=50), "error": ""})
        except ApplicationError as exc:
            out.append({"server": rank, "lines": [], "error": exc.message})
    return out


@login_required
def server_detail(request, server_id: int):
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    query = request.GET.get("q", "").strip()
    can_logs = request.user.is_operator
    lines, log_error = _log_lines(server, query) if can_logs else ([], "")
    context = {"server": server, "events": selectors.server_events(server=server), "log_lines": lines,
               "log_error": log_error,
               "query": query, "can_logs": can_logs, "can_operate": request.user.is_operator,
               "command_line": shlex.join(redact.argv_redact(server.argv)) if server.argv else "",
               "metrics_template": _metrics_template(), "sleep_mode": "--enable-sleep-mode" in (server.argv or []),
               "group": server.group, "group_ranks": server.group.ranks.select_related("node").order_by("rank")
               if server.group_id else [],
               "rank_logs": _rank_logs(server.group, but=server.pk) if server.group_id and can_logs
               and not request.htmx else []}
    if request.htmx and request.GET.get("part") == "status":
        return render(request, "servers/detail.html#status", context)
    return render(request, "servers/detail.html", context)


def _log_lines(server, query: str) -> tuple[list[str], str]:
    # The log is read on the server's node: a node whose worker is down must not take the page down with it.
    try:
        return logs.server_log_lines(server=server, lines=200, query=query), ""
    except ApplicationError as exc:
        return [], exc.message


def _metrics_template():
    try:
        return select_template(["servers/_metrics.html"]).template.name
    except Exception:  # noqa: BLE001 - the metrics panel is optional
        return None


@login_required
def server_log_download(request, server_id: int):
    require_operator(request.user)
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    path = logs.log_path(server.pk)
    if not path.exists():
        raise Http404(f"Server #{server.pk} has no log on this host.")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name, content_type="text/plain")


def _action(request, server_id: int, service, done: str):
    server = selectors.server_get_visible(user=request.user, server_id=server_id)
    try:
        server = service(user=request.user, server=server, ip=client_ip(request))
        messages.success(request, done.format(server=server))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect_next(request, "servers-detail", server_id=server_id)


@login_required
@require_POST
def server_stop(request, server_id: int):
    return _action(request, server_id, services.server_stop, "Stopping server #{server.pk}.")


@login_required
@require_POST
def server_restart(request, server_id: int):
    return _action(request, server_id, services.server_restart, "Server #{server.pk} is queued again.")


@login_required
@require_POST
def group_restart(request, group_id: int):
    group = selectors.group_get_visible(user=request.user, group_id=group_id)
    leader = group.ranks.get(rank=0)
    try:
        services.group_restart(user=request.user, group=group, ip=client_ip(request))
        messages.success(request, f"Group #{group.pk} is queued again on its nodes.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect_next(request, "servers-detail", server_id=leader.pk)


@login_required
@require_POST
def server_clear(request, server_id: int):
    return _action(request, server_id, services.server_clear,
                   "Server #{server.pk} is cleared from the list (its page and history stay).")


@login_required
@require_POST
def server_adopt(request, server_id: int):
    return _action(request, server_id, services.server_adopt, "Server #{server.pk} is adopted.")


@login_required
@require_POST
def server_sleep(request, server_id: int):
    level = 2 if request.POST.get("level") == "2" else 1

    def sleep(**kwargs):
        return services.server_sleep(level=level, **kwargs)

    return _action(request, server_id, sleep, f"Server #{{server.pk}} is going to sleep (level {level}).")


@login_required
@require_POST
def server_wake(request, server_id: int):
    return _action(request, server_id, services.server_wake, "Server #{server.pk} is waking up.")
