"""Admin site: django-celery-beat's raw schedule tables only for superusers.

Beat's schedules are written by the portal (CELERY_BEAT_SCHEDULE and the benchmark plans); an admin of
the portal who edits those rows by hand breaks them, so the tables are hidden from staff who are not
superusers. This module loads after django_celery_beat's admin (INSTALLED_APPS order).
"""
from django.contrib import admin
from django.http import HttpRequest
from django_celery_beat import models as beat

BEAT_MODELS = (beat.PeriodicTask, beat.IntervalSchedule, beat.CrontabSchedule, beat.SolarSchedule,
               beat.ClockedSchedule)


def _superuser_only(model_admin: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    class SuperuserOnly(model_admin):  # type: ignore[valid-type, misc]
        def has_module_permission(self, request: HttpRequest) -> bool:
            return request.user.is_superuser

        def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
            return request.user.is_superuser

        def has_add_permission(self, request: HttpRequest, *args) -> bool:
            return request.user.is_superuser

        def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
            return request.user.is_superuser

        def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
            return request.user.is_superuser

    return SuperuserOnly


for _model in BEAT_MODELS:
    if admin.site.is_registered(_model):
        _admin_class = type(admin.site._registry[_model])
        admin.site.unregister(_model)
        admin.site.register(_model, _superuser_only(_admin_class))
