from django.contrib import admin

from accounts.scim.models import ScimGroup, ScimUser


class ReadOnly(admin.ModelAdmin):
    """The provider owns these rows (it pushes them over /scim/v2/): admins look, the provider writes."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ScimUser)
class ScimUserAdmin(ReadOnly):
    list_display = ("user", "external_id", "deleted_at", "updated_at")
    search_fields = ("user__username", "external_id")


@admin.register(ScimGroup)
class ScimGroupAdmin(ReadOnly):
    list_display = ("display_name", "external_id", "updated_at")
    search_fields = ("display_name",)
