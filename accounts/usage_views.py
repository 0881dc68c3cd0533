from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from accounts import limits, selectors
from sparkportal.lib.csvsafe import SafeWriter

CSV_FIELDS = ["created_at", "username", "key_prefix", "model", "endpoint", "stream", "status", "error_code",
              "prompt_tokens", "completion_tokens", "ttft_ms", "duration_ms", "client_ip"]


def _days(request) -> int:
    try:
        return max(1, min(366, int(request.GET.get("days", 30))))
    except ValueError:
        return 30


@login_required
def usage_mine(request):
    days = _days(request)
    summary = selectors.usage_summary(records=selectors.usage_records(user=request.user, days=days))
    return render(request, "accounts/usage.html", {"summary": summary, "team": False, "days": days,
                                                   "tokens_today": limits.tokens_used_today(request.user.pk)})


@login_required
def usage_team(request):
    days = _days(request)
    summary = selectors.usage_summary(records=selectors.usage_records(user=request.user, everyone=True, days=days))
    return render(request, "accounts/usage.html", {"summary": summary, "team": True, "days": days})


@login_required
def usage_export(request):
    everyone = request.GET.get("scope") == "team"
    records = selectors.usage_records(user=request.user, everyone=everyone, days=_days(request)).order_by("created_at")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{"team" if everyone else "mine"}.csv"'
    writer = SafeWriter(response)
    writer.writerow(CSV_FIELDS)
    for row in records.values_list(*CSV_FIELDS).iterator():
        writer.writerow(row)
    return response
