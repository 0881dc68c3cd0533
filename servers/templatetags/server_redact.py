"""`{{ text|redacted }}`: a server's reasons and failure lines as members may see them (engines.redact)."""
from django import template

from engines import redact

register = template.Library()


@register.filter
def redacted(text: str | None) -> str:
    return redact.text_redact(text or "")
