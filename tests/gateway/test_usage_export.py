"""The usage export: a model name a client chose cannot become a spreadsheet formula."""
import csv
import io

from django.utils import timezone

from gateway.models import UsageRecord


def test_a_refused_requests_model_name_is_exported_as_text(client, admin_user, member_user):
    UsageRecord.objects.create(user=member_user, username=member_user.username, model='=HYPERLINK("http://x.test","a")',
                               endpoint="chat/completions", status=400, error_code="-1+1", created_at=timezone.now(),
                               prompt_tokens=3, completion_tokens=0, duration_ms=1.5)
    client.force_login(admin_user)
    response = client.get("/usage/export.csv?scope=team")
    assert response.status_code == 200
    row = next(csv.DictReader(io.StringIO(response.content.decode())))
    assert row["model"] == '\'=HYPERLINK("http://x.test","a")'
    assert row["error_code"] == "'-1+1"
    assert (row["username"], row["prompt_tokens"], row["status"]) == ("mia", "3", "400")
