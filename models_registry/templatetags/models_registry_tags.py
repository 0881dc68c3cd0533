import json

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
