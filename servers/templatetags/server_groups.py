"""`{{ group|preflight_of:rank }}`: what a rank's node reported before its launch (ServerGroup.preflight)."""
from django import template

register = template.Library()


@register.filter
def preflight_of(group, rank) -> dict:
    return (getattr(group, "preflight", None) or {}).get(str(rank)) or {}
