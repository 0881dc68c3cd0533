from django.contrib import admin

from models_registry.models import ModelProfile


@admin.register(ModelProfile)
class ModelProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "engine", "task", "repo_id", "served_model_name", "gpu_memory_utilization")
    list_filter = ("engine", "task")
    search_fields = ("name", "repo_id", "served_model_name")
