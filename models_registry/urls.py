from django.urls import path

from models_registry import views

urlpatterns = [
    path("", views.profile_list, name="models-list"),
    path("new/", views.profile_new, name="models-new"),
    path("catalog/", views.catalog, name="models-catalog"),
    path("catalog/<slug:name>/add/", views.catalog_add, name="models-catalog-add"),
    path("downloads/", views.downloads, name="models-downloads"),
    path("downloads/<int:download_id>/<slug:action>/", views.download_action, name="models-download-action"),
    path("weights/", views.weights, name="models-weights"),
    path("weights/delete/", views.weights_delete, name="models-weights-delete"),
    path("weights/refresh/", views.weights_refresh, name="models-weights-refresh"),
    path("weights/node/<slug:node>/", views.weights_node, name="models-weights-node"),
    path("hub-token/", views.hub_token, name="models-hub-token"),
    path("<int:profile_id>/", views.profile_detail, name="models-detail"),
    path("<int:profile_id>/edit/", views.profile_edit, name="models-edit"),
    path("<int:profile_id>/memory/", views.profile_memory, name="models-memory"),
    path("<int:profile_id>/clone/", views.profile_clone, name="models-clone"),
    path("<int:profile_id>/delete/", views.profile_delete, name="models-delete"),
    path("<int:profile_id>/download/", views.profile_download, name="models-download"),
]
