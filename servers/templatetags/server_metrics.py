"""`{% server_metric_points server as points %}`: the chart's starting points, so the partial needs no view code."""
from django import template

from servers.metrics import selectors as metric_selectors

register = template.Library()


@register.simple_tag
def server_metric_points(server, limit: int = 120) -> list[dict]:
    return metric_selectors.server_metric_points(server=server, limit=limit)
