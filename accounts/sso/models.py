"""Which single sign-on group grants which portal role and team (set by an admin)."""
from django.db import models
from django.db.models import Q

from accounts.models import User
from accounts.teams.models import Team


class SsoGroupMapping(models.Model):
    """One group of the provider's groups claim -> a role and/or a team membership.

    At every login the user gets the highest role of their mapped groups (or the default role when
    none maps a role) and exactly the SSO-granted memberships their groups still map to."""

    group = models.CharField(max_length=200, help_text="A value of the ID token's groups claim.")
    role = models.CharField(max_length=16, blank=True, choices=User.Role.choices)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="sso_mappings")
    team_admin = models.BooleanField(default=False, help_text="Members of the group administer the team.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group"]
        constraints = [
            models.CheckConstraint(condition=~Q(role="") | Q(team__isnull=False),
                                   name="accounts_ssogroupmapping_grants_something"),
            models.CheckConstraint(condition=Q(role="") | Q(role__in=["admin", "operator", "member"]),
                                   name="accounts_ssogroupmapping_role_valid"),
            models.UniqueConstraint(fields=["group", "team"], name="accounts_ssogroupmapping_group_team_unique"),
        ]

    def __str__(self) -> str:
        grants = [g for g in (self.role and f"role {self.role}", self.team_id and f"team {self.team}") if g]
        return f"{self.group} -> {', '.join(grants)}"


class SsoIdentity(models.Model):
    """Links a portal user to the provider's subject (`iss` + `sub`): a login is matched on it, never on a
    username alone, so an identity at the provider can never take over a local account of the same name."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    groups = models.JSONField(default=list, blank=True, help_text="The groups claim at the last login.")
    last_login_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="accounts_ssoidentity_unique")]

    def __str__(self) -> str:
        return f"{self.user} ({self.subject} at {self.issuer})"
