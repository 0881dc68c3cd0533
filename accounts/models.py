from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q


class User(AbstractUser):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        OPERATOR = "operator", "Operator"
        MEMBER = "member", "Member"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(role__in=["admin", "operator", "member"]),
                                   name="accounts_user_role_valid"),
        ]

    @property
    def is_portal_admin(self) -> bool:
        return self.is_superuser or self.role == self.Role.ADMIN

    @property
    def is_operator(self) -> bool:
        """Operators and admins drive profiles, downloads, servers and benchmarks."""
        return self.is_portal_admin or self.role == self.Role.OPERATOR


class ApiKey(models.Model):
    """A secret shown once at creation; only its SHA-256 is stored.

    A fast hash is right here: the secret has 240 bits of entropy, so guessing is hopeless
    and a slow KDF would only slow down every request.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, blank=True,
                              help_text="Model names this key may use; empty means all the owner may use.")
    expires_at = models.DateTimeField(null=True, blank=True)
    gateway_only = models.BooleanField(
        default=False, help_text="Refused by the REST API (/api): only the /v1 gateway takes it. The portal makes "
                                 "such keys for its own work, e.g. a classifier job's LLM calls.")
    # The team its requests are charged to (accounts.teams.selectors.team_charged); it must be one of the
    # owner's teams when the key is made, and a key whose owner has left it is refused by the gateway.
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="api_keys",
                             help_text="Requests are charged to this team; empty: the owner's only team, if any.")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], condition=Q(revoked_at__isnull=True),
                                    name="accounts_apikey_active_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def display(self) -> str:
        return f"{self.prefix}…"


class AuditEvent(models.Model):
    """Append-only: who did what to which object, when and from where."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["actor", "-created_at"], name="accounts_audit_actor_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")


class Quota(models.Model):
    """Gateway limits: a row with a user overrides that user's role default; a row with only a role is
    the default for everyone in it. Per field, null means "inherit" on a user row and "unlimited" on a
    role row. `allowed_models` empty means every model."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="quota")
    role = models.CharField(max_length=16, blank=True, choices=User.Role.choices)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    concurrent_requests = models.PositiveIntegerField(null=True, blank=True)
    allowed_models = models.JSONField(default=list, blank=True,
                                      help_text="Model names the user may use; empty means all.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(role="")) | (Q(user__isnull=True) & ~Q(role="")),
                name="accounts_quota_user_xor_role"),
            models.UniqueConstraint(fields=["role"], condition=Q(user__isnull=True),
                                    name="accounts_quota_role_default_unique"),
        ]

    def __str__(self) -> str:
        return f"quota of {self.user}" if self.user_id else f"default quota of role {self.role}"


from accounts.scim.models import ScimGroup, ScimUser  # noqa: E402,F401
from accounts.sso.models import SsoGroupMapping, SsoIdentity  # noqa: E402,F401
from accounts.teams.models import Team, TeamMembership  # noqa: E402,F401  (registered with this app)
