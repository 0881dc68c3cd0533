from django.contrib import admin

from accounts import services as account_services
from accounts.sso import services
from accounts.sso.models import SsoGroupMapping


@admin.register(SsoGroupMapping)
class SsoGroupMappingAdmin(admin.ModelAdmin):
    """Mappings change through the service: validated and audited; they apply at each user's next login."""

    list_display = ("group", "role", "team", "team_admin", "created_at")
    list_filter = ("role", "team")
    search_fields = ("group",)
    fields = ("group", "role", "team", "team_admin")
    actions = None  # the bulk delete would skip the service and its audit row

    def save_model(self, request, obj, form, change):
        saved = services.mapping_save(actor=request.user, mapping=obj if change else None, group=obj.group,
                                      role=obj.role, team=obj.team, team_admin=obj.team_admin,
                                      ip=account_services.client_ip(request))
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.mapping_delete(actor=request.user, mapping=obj, ip=account_services.client_ip(request))
