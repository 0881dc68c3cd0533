import json
import re

from django import template

from models_registry import events

register = template.Library()


@register.filter
def download_json(download) -> str:
    """The live payload of a download as JSON, for an Alpine x-data attribute (autoescaping keeps it safe)."""
    payload = dict(events.download_payload(download))
    return json.dumps(payload)


@register.filter
def gb(value) -> str:
    return "?" if value is None else f"{value / 1e9:.1f} GB"


@register.filter
def dom_id(value) -> str:
    """A repo id as an HTML id that CSS selectors accept unescaped (htmx looks preserved inputs up with one):
    every character other than letters, digits, - and _ becomes _<hex>_."""
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"_{ord(m.group()):x}_", str(value))
