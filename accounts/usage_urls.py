from django.urls import path

from accounts import usage_views

urlpatterns = [
    path("", usage_views.usage_mine, name="usage-mine"),
    path("team/", usage_views.usage_team, name="usage-team"),
    path("export.csv", usage_views.usage_export, name="usage-export"),
]
