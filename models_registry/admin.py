from django import forms
from django.contrib import admin

from models_registry import services
from models_registry.models import Download, ModelProfile, NodeHubToken, RepoSnapshot


class ModelProfileAdminForm(forms.ModelForm):
    class Meta:
        model = ModelProfile
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        draft = ModelProfile(pk=self.instance.pk, **{k: v for k, v in cleaned.items()
                                                       if k in services.PROFILE_FIELDS})
        for field, message in services.profile_problems(draft).items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(ModelProfile)
class ModelProfileAdmin(admin.ModelAdmin):
    form = ModelProfileAdminForm
    list_display = ("name", "engine", "task", "repo_id", "served_model_name", "gpu_memory_utilization")
    list_filter = ("engine", "task")
    search_fields = ("name", "repo_id", "served_model_name")
    readonly_fields = ("created_by", "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        # Through the services, so admin edits are validated and audited like any other.
        data = {k: form.cleaned_data[k] for k in form.changed_data if k in services.PROFILE_FIELDS}
        if change:
            fresh = ModelProfile.objects.get(pk=obj.pk)
            saved = services.profile_update(profile=fresh, actor=request.user, data=data)
        else:
            data = {k: getattr(obj, k) for k in services.PROFILE_FIELDS}
            saved = services.profile_create(actor=request.user, data=data)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.profile_delete(profile=obj, actor=request.user)


@admin.register(Download)
class DownloadAdmin(admin.ModelAdmin):
    list_display = ("repo_id", "node", "status", "bytes_done", "bytes_total", "created_at", "finished_at")
    list_filter = ("status", "node")
    search_fields = ("repo_id",)
    readonly_fields = [f.name for f in Download._meta.fields]

    def has_add_permission(self, request):
        return False  # downloads start from a profile or the API, which queue the task


class NodeHubTokenForm(forms.ModelForm):
    token = forms.CharField(widget=forms.PasswordInput(render_value=False),
                            help_text="Stored encrypted on the server; never shown again.")

    class Meta:
        model = NodeHubToken
        fields = ("node",)


@admin.register(NodeHubToken)
class NodeHubTokenAdmin(admin.ModelAdmin):
    form = NodeHubTokenForm
    list_display = ("node", "set_by", "set_at")

    def save_model(self, request, obj, form, change):
        saved = services.hub_token_set(node=obj.node, token=form.cleaned_data["token"], actor=request.user)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.hub_token_clear(node=obj.node, actor=request.user)


@admin.register(RepoSnapshot)
class RepoSnapshotAdmin(admin.ModelAdmin):
    list_display = ("repo_id", "revision", "commit", "fetched_at")
    search_fields = ("repo_id",)
