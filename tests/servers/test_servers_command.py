"""`manage.py servers` has the page's verbs, and several servers run at once."""
import io

import pytest
from django.core.management import CommandError, call_command

from servers.models import Server


def _run(*args) -> str:
    out = io.StringIO()
    call_command("servers", *args, stdout=out)
    return out.getvalue()


def test_it_starts_two_servers_lists_them_and_stops_them(celery_worker, node, make_profile, admin_user):
    make_profile("coder")
    make_profile("reranker", gpu_memory_utilization=0.15)
    first = _run("start", "coder", "--wait")
    second = _run("start", "reranker", "--node", node.name, "--port", "8190", "--wait")
    assert "ready" in first and f"queued on {node.name}:8190" in second
    listing = _run("list")
    assert listing.count("ready") == 2 and "coder" in listing and "reranker" in listing
    ids = list(Server.objects.filter(profile__isnull=False).order_by("pk").values_list("pk", flat=True))
    assert "Application startup complete." in _run("logs", str(ids[0]), "--lines", "30")
    for server_id in ids:
        assert "stopped" in _run("stop", str(server_id), "--wait")


def test_it_explains_bad_input(node, make_profile, admin_user):
    with pytest.raises(CommandError, match="No profile named 'nope' \\(profiles: none yet\\)"):
        _run("start", "nope")
    make_profile("coder", extra_flags="--disable-log-stats")
    with pytest.raises(CommandError, match="--disable-log-stats removes every vllm"):
        _run("start", "coder")
    with pytest.raises(CommandError, match="There is no server 99"):
        _run("stop", "99")
