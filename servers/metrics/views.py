"""The engine-metrics page of one server (the server's own page includes the same partial)."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from servers.metrics import selectors as metric_selectors


@login_required
def server_metrics_page(request, server_id: int):
    server = metric_selectors.server_for_metrics(user=request.user, server_id=server_id)
    return render(request, "servers/metrics.html", {"server": server})
