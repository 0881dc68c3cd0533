"""Users and groups an identity provider pushes over SCIM 2.0 (RFC 7643/7644)."""
from django.db import models

from accounts.models import User


class ScimUser(models.Model):
    """Marks a portal user as provisioned by the provider: its first SSO login links to it by username."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="scim")
    external_id = models.CharField(max_length=255, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="Deleted by the provider: the account is "
                                                                       "kept deactivated for the audit and ledger.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"SCIM {self.user}"


class ScimGroup(models.Model):
    """A provider group; its name is matched by SsoGroupMapping like a groups claim at login."""

    display_name = models.CharField(max_length=200, unique=True)
    external_id = models.CharField(max_length=255, blank=True)
    members = models.ManyToManyField(User, related_name="scim_groups", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name
