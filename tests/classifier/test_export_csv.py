"""A job's CSV export: labels, paths and reasons that look like formulas stay text in a spreadsheet."""
import csv
import io

from classifier import services
from classifier.models import ClassificationResult


def test_cells_that_start_a_formula_are_exported_as_text(client, archive, jd_version, member_user):
    root, _ = archive
    job = services.job_create(owner=member_user, version=jd_version, source_path=str(root / "docs"), enqueue=False)
    ClassificationResult.objects.create(job=job, path="@SUM(1+1)", code="10", label_path='=HYPERLINK("http://x.test")',
                                        score=-0.25, method="embedding", reason="\tcmd|' /C calc'!A0")
    ClassificationResult.objects.create(job=job, path="/archive/plain.txt", code="10", label_path="Finance",
                                        method="embedding", reason="+1 lead")
    client.force_login(member_user)
    body = client.get(f"/classifier/jobs/{job.pk}/export.csv").content.decode()
    rows = {r["code"] + r["path"]: r for r in csv.DictReader(io.StringIO(body))}
    formula = rows["10'@SUM(1+1)"]
    assert formula["label_path"] == '\'=HYPERLINK("http://x.test")'
    assert formula["reason"] == "'\tcmd|' /C calc'!A0" and formula["score"] == "-0.25"
    assert rows["10/archive/plain.txt"]["label_path"] == "Finance"
    assert rows["10/archive/plain.txt"]["reason"] == "'+1 lead"
