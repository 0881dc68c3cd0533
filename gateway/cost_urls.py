from django.urls import path

from gateway import cost_views

urlpatterns = [
    path("", cost_views.cost, name="gateway-cost"),
    path("prices/", cost_views.price_create, name="gateway-price-create"),
    path("prices/<int:price_id>/", cost_views.price_update, name="gateway-price-update"),
    path("prices/<int:price_id>/delete/", cost_views.price_delete, name="gateway-price-delete"),
    path("settings/", cost_views.cost_settings_save, name="gateway-cost-settings"),
]
