from django.urls import path

from servers import views
from servers.metrics import views as metric_views

urlpatterns = [
    path("", views.server_list, name="servers-list"),
    path("plan/", views.server_plan, name="servers-plan"),
    path("start/", views.server_start, name="servers-start"),
    path("<int:server_id>/", views.server_detail, name="servers-detail"),
    path("<int:server_id>/log/", views.server_log_download, name="servers-log-download"),
    path("<int:server_id>/stop/", views.server_stop, name="servers-stop"),
    path("<int:server_id>/start/", views.server_restart, name="servers-restart"),
    path("<int:server_id>/adopt/", views.server_adopt, name="servers-adopt"),
    path("<int:server_id>/clear/", views.server_clear, name="servers-clear"),
    path("<int:server_id>/sleep/", views.server_sleep, name="servers-sleep"),
    path("<int:server_id>/wake/", views.server_wake, name="servers-wake"),
    path("groups/<int:group_id>/start/", views.group_restart, name="servers-group-restart"),
    path("groups/<int:group_id>/on-demand/", views.group_on_demand, name="servers-group-on-demand"),
    path("preflight/", views.group_preflight, name="servers-preflight"),
    path("<int:server_id>/metrics/", metric_views.server_metrics_page, name="servers-metrics"),
]
