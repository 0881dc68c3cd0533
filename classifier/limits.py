"""How large a request body each classifier path may take; sparkportal.asgi refuses more with a 413 before
the body is stored (Django would spool it to disk first). Multipart framing gets 1 MB on top."""
from django.conf import settings

from classifier.evaluation import MAX_LABELED_CSV_BYTES
from classifier.taxonomy.yaml_import import MAX_BYTES as TAXONOMY_MAX_BYTES

FRAMING = 2**20


def body_limits() -> list[tuple[str, int]]:
    """[(path prefix, max bytes)], the most specific prefix first."""
    uploads = settings.PORTAL_CLASSIFIER_UPLOAD_MAX_BYTES + FRAMING
    labeled = MAX_LABELED_CSV_BYTES + FRAMING
    return [("/api/classifier/uploads/", uploads), ("/classifier/jobs/new/", uploads),
            ("/classifier/taxonomies/import/", TAXONOMY_MAX_BYTES + FRAMING),
            ("/api/classifier/taxonomies/", max(TAXONOMY_MAX_BYTES, MAX_LABELED_CSV_BYTES) + FRAMING),
            ("/classifier/taxonomies/", labeled), ("/api/classifier/evaluate/", labeled)]
