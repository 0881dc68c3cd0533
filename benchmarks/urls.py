from django.urls import path

from benchmarks import views

urlpatterns = [
    path("", views.index, name="benchmarks-index"),
    path("workloads/", views.workload_create, name="benchmarks-workload-create"),
    path("plans/<int:plan_id>/run/", views.plan_run, name="benchmarks-plan-run"),
    path("plans/<int:plan_id>/schedule/", views.plan_schedule, name="benchmarks-plan-schedule"),
    path("runs/<int:run_id>/", views.run_detail, name="benchmarks-run"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="benchmarks-run-cancel"),
    path("compare/", views.compare, name="benchmarks-compare"),
]
