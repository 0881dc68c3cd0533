from django.urls import path

from nodes import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
