from django.urls import path, re_path

from classifier import views

urlpatterns = [
    path("", views.home, name="classifier-home"),
    path("taxonomies/import/", views.taxonomy_import, name="classifier-taxonomy-import"),
    path("taxonomies/<slug:name>/", views.taxonomy_detail, name="classifier-taxonomy"),
    path("taxonomies/<slug:name>/calibrate/", views.margin_calibrate, name="classifier-calibrate"),
    path("taxonomies/<slug:name>/calibrations/<str:task_id>/", views.calibration_status,
         name="classifier-calibration"),
    path("taxonomies/<slug:name>/margin/", views.margin_override, name="classifier-margin-override"),
    path("taxonomies/<slug:name>/evaluate/", views.evaluate, name="classifier-evaluate"),
    path("taxonomies/<slug:name>/evaluations/<str:task_id>/", views.evaluation_status,
         name="classifier-evaluation"),
    path("nodes/<int:node_id>/edit/", views.node_edit, name="classifier-node-edit"),
    path("jobs/new/", views.job_create, name="classifier-job-create"),
    path("jobs/<int:job_id>/", views.job_detail, name="classifier-job"),
    path("jobs/<int:job_id>/export.<str:fmt>", views.job_export, name="classifier-job-export"),
    path("jobs/<int:job_id>/plan/", views.job_plan, name="classifier-job-plan"),
    re_path(r"^jobs/(?P<job_id>\d+)/(?P<action>cancel|resume)/$", views.job_action, name="classifier-job-action"),
    path("results/<int:result_id>/correct/", views.result_correct, name="classifier-result-correct"),
]
