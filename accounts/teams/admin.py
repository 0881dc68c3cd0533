"""Django admin for teams: every change through the services, so it is validated and audited."""
from django import forms
from django.contrib import admin

from accounts import services as account_services
from accounts.teams import services
from accounts.teams.models import Team, TeamMembership
from sparkportal.exceptions import ApplicationError


class MembershipForm(forms.ModelForm):
    class Meta:
        model = TeamMembership
        fields = ("user", "is_team_admin", "requests_per_minute", "tokens_per_day", "concurrent_requests")

    def clean(self):
        data = super().clean()
        team = self.instance.team if self.instance.team_id else None
        if team is not None:
            try:
                services.member_limits_check(team=team, wanted={f: data.get(f) for f in services.MEMBER_FIELDS})
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message) from None
        return data


class MembershipInline(admin.TabularInline):
    model = TeamMembership
    form = MembershipForm
    fields = ("user", "is_team_admin", "requests_per_minute", "tokens_per_day", "concurrent_requests", "from_sso")
    readonly_fields = ("from_sso",)
    autocomplete_fields = ("user",)
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "requests_per_minute", "tokens_per_day", "tokens_per_month", "concurrent_requests",
                    "monthly_token_budget", "allowed_models")
    search_fields = ("name",)
    fields = ("name", "description", "requests_per_minute", "tokens_per_day", "tokens_per_month",
              "concurrent_requests", "monthly_token_budget", "allowed_models", "queue_weight")
    inlines = [MembershipInline]
    actions = None  # the bulk delete would skip the service and its audit row


    def save_model(self, request, obj, form, change):
        saved = services.team_save(
            actor=request.user, team=Team.objects.get(pk=obj.pk) if change else None,
            name=obj.name, description=obj.description, requests_per_minute=obj.requests_per_minute,
            tokens_per_day=obj.tokens_per_day, tokens_per_month=obj.tokens_per_month,
            concurrent_requests=obj.concurrent_requests, monthly_token_budget=obj.monthly_token_budget,
            allowed_models=obj.allowed_models, queue_weight=obj.queue_weight, ip=account_services.client_ip(request))
        obj.pk = saved.pk

    def save_formset(self, request, form, formset, change):
        ip = account_services.client_ip(request)
        changed = formset.save(commit=False)  # fills deleted_objects too; nothing is written here
        for obj in formset.deleted_objects:
            services.team_member_remove(actor=request.user, membership=obj, ip=ip)
        for membership in changed:
            saved = services.team_member_add(actor=request.user, team=form.instance, user=membership.user,
                                             is_team_admin=membership.is_team_admin, ip=ip)
            services.team_member_limits_set(actor=request.user, membership=saved,
                                            requests_per_minute=membership.requests_per_minute,
                                            tokens_per_day=membership.tokens_per_day,
                                            concurrent_requests=membership.concurrent_requests, ip=ip)

    def delete_model(self, request, obj):
        services.team_delete(actor=request.user, team=obj, ip=account_services.client_ip(request))
