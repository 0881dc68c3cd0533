from django import forms
from django.contrib import admin

from accounts.services import client_ip
from servers.groups import on_demand
from servers.models import ServerGroup
from sparkportal.exceptions import ApplicationError

# Only the on-demand policy is edited here; every other field follows the ranks (servers/groups/services.py).
POLICY_FIELDS = ("load_on_demand", "unload_idle_minutes")


class ServerGroupAdminForm(forms.ModelForm):
    class Meta:
        model = ServerGroup
        fields = POLICY_FIELDS

    def clean(self):
        cleaned = super().clean()
        try:
            on_demand._check_policy(self.instance, load_on_demand=cleaned.get("load_on_demand", False),
                                    unload_idle_minutes=cleaned.get("unload_idle_minutes"))
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        return cleaned


@admin.register(ServerGroup)
class ServerGroupAdmin(admin.ModelAdmin):
    form = ServerGroupAdminForm
    list_display = ("pk", "served_model_name", "node_count", "status", "load_on_demand", "unload_idle_minutes",
                    "master_addr", "master_port", "created_at")
    list_filter = ("status", "load_on_demand")
    search_fields = ("served_model_name",)
    fields = ("profile", "served_model_name", "node_count", "status", "status_reason", "master_addr", "master_port",
              "restart_policy", *POLICY_FIELDS, "created_at", "ready_at", "stopped_at")
    readonly_fields = tuple(f for f in fields if f not in POLICY_FIELDS)

    def has_add_permission(self, request):
        return False  # a group starts from the Servers page or the API, which admit and queue its ranks

    def has_delete_permission(self, request, obj=None):
        return False  # its ranks and history point at it

    def save_model(self, request, obj, form, change):
        # Through the service, so the change is checked and audited like one made on the page or the API.
        on_demand.group_on_demand_set(user=request.user, group=obj, load_on_demand=obj.load_on_demand,
                                      unload_idle_minutes=obj.unload_idle_minutes, ip=client_ip(request))
