from django.contrib import admin

from gateway.models import QueueWeight, ServerCapacity, UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ("created_at", "username", "key_prefix", "model", "endpoint", "status", "prompt_tokens",
                    "completion_tokens", "ttft_ms", "duration_ms")
    list_filter = ("status", "endpoint", "model")
    search_fields = ("username", "key_prefix", "model")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(QueueWeight)
class QueueWeightAdmin(admin.ModelAdmin):
    list_display = ("user", "weight")
    search_fields = ("user__username",)


@admin.register(ServerCapacity)
class ServerCapacityAdmin(admin.ModelAdmin):
    list_display = ("server", "profile", "max_in_flight")
