from django.contrib import admin
from django.urls import include, path

from sparkportal import exporter
from sparkportal.api import api

urlpatterns = [
    path("", include("nodes.urls")),
    path("accounts/", include("accounts.urls")),
    path("scim/v2/", include("accounts.scim.urls")),
    path("models/", include("models_registry.urls")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("metrics", exporter.metrics_view, name="portal-metrics"),
    path("benchmarks/", include("benchmarks.urls")),
    path("classifier/", include("classifier.urls")),
    path("servers/", include("servers.urls")),
    path("chat/", include("gateway.urls")),
    path("usage/", include("gateway.usage.urls")),
]
