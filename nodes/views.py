from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from nodes import selectors


@login_required
def dashboard(request):
    nodes = list(selectors.node_list())
    history = {
        node.pk: [{"at": s.at.isoformat(), "host": s.host, "gpus": s.gpus}
                  for s in selectors.node_samples_recent(node=node)]
        for node in nodes
    }
    return render(request, "dashboard.html", {"nodes": nodes, "history": history})
