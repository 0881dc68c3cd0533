from django.contrib import admin

from nodes.models import Node


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "queue", "last_heartbeat_at", "memory_budget", "vllm_executable", "network_interface",
                    "host_ip")
    readonly_fields = ("last_heartbeat_at", "host_facts", "gpu_facts", "created_at")
