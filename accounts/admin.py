from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts import services
from accounts.models import ApiKey, AuditEvent, Quota, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "role", "is_active", "last_login")
    list_filter = ("role", "is_active", "is_superuser")
    fieldsets = BaseUserAdmin.fieldsets + (("Portal", {"fields": ("role",)}),)
    add_fieldsets = BaseUserAdmin.add_fieldsets + (("Portal", {"fields": ("role",)}),)

    def save_model(self, request, obj, form, change):
        new_role = obj.role
        if change and "role" in form.changed_data:
            # The role change goes through the service so that it is audited.
            obj.role = User.objects.get(pk=obj.pk).role
            super().save_model(request, obj, form, change)
            services.user_role_set(user=obj, role=new_role, actor=request.user, ip=services.client_ip(request))
        else:
            super().save_model(request, obj, form, change)
            if not change:
                services.audit_record(actor=request.user, action="accounts.user.created", target=obj,
                                      ip=services.client_ip(request),
                                      details={"username": obj.username, "role": obj.role})


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "owner", "team", "expires_at", "last_used_at", "revoked_at", "created_at")
    list_filter = ("revoked_at", "gateway_only", "team")
    search_fields = ("prefix", "name", "owner__username")
    # The team is chosen when the key is made (among the owner's teams), like its name.
    readonly_fields = ("owner", "name", "prefix", "hashed_key", "gateway_only", "team", "last_used_at",
                       "revoked_at", "created_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are created on the Keys page or with `manage.py apikey create`, which show the secret

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.revoked_at is not None:
            return (*self.readonly_fields, "scopes", "expires_at")
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        # Through the service: audited, and the edit reaches every cached copy of the key at once.
        if obj.revoked_at is None:
            services.api_key_update(key=obj, actor=request.user, scopes=obj.scopes, expires_at=obj.expires_at,
                                    ip=services.client_ip(request))

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(key=key, actor=request.user, ip=services.client_ip(request))
        messages.success(request, "Revoked.")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_name", "action", "target_type", "target_id", "ip")
    list_filter = ("action",)
    search_fields = ("actor_name", "action", "target_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    """Quota changes go through the service: validated, audited, effective on the next request."""

    list_display = ("__str__", "requests_per_minute", "tokens_per_day", "concurrent_requests", "allowed_models",
                    "updated_at")
    fields = ("user", "role", "requests_per_minute", "tokens_per_day", "concurrent_requests", "allowed_models")

    def save_model(self, request, obj, form, change):
        saved = services.quota_set(actor=request.user, user=obj.user, role=obj.role,
                                   requests_per_minute=obj.requests_per_minute, tokens_per_day=obj.tokens_per_day,
                                   concurrent_requests=obj.concurrent_requests, allowed_models=obj.allowed_models,
                                   ip=services.client_ip(request))
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.audit_record(actor=request.user, action="accounts.quota.deleted", target=obj,
                              ip=services.client_ip(request), details={"quota": str(obj)})
        super().delete_model(request, obj)


from accounts.scim import admin as _scim_admin  # noqa: E402,F401  (registers SCIM users and groups)
from accounts.sso import admin as _sso_admin  # noqa: E402,F401  (registers the SSO group mappings)
from accounts.teams import admin as _teams_admin  # noqa: E402,F401  (registers teams)
