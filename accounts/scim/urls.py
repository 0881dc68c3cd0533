from django.urls import path

from accounts.scim import views

urlpatterns = [
    path("Users", views.users, name="scim-users"),
    path("Users/<str:user_id>", views.user_detail, name="scim-user"),
    path("Groups", views.groups, name="scim-groups"),
    path("Groups/<str:group_id>", views.group_detail, name="scim-group"),
    path("ServiceProviderConfig", views.service_provider_config, name="scim-config"),
]
