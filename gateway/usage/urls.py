from django.urls import path

from gateway.usage import views

urlpatterns = [
    path("", views.usage_mine, name="usage-mine"),
    path("team/", views.usage_team, name="usage-team"),
    path("teams/<int:team_id>/", views.usage_of_team, name="usage-of-team"),
    path("export.csv", views.usage_export, name="usage-export"),
    path("cost/", views.cost, name="gateway-cost"),
    path("cost/prices/", views.price_create, name="gateway-price-create"),
    path("cost/prices/<int:price_id>/", views.price_update, name="gateway-price-update"),
    path("cost/prices/<int:price_id>/delete/", views.price_delete, name="gateway-price-delete"),
    path("cost/settings/", views.cost_settings_save, name="gateway-cost-settings"),
]
