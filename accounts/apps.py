from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import receivers, revocation  # noqa: F401  (receivers: login/logout audit)
        from sparkportal import events

        revocation.receivers_connect()
        events.register_group("accounts.user", lambda user, group: group == f"accounts.user.{user.pk}")
        events.register_group("accounts.team", _may_join_team)


def _may_join_team(user, group: str) -> bool:
    from accounts.teams.models import TeamMembership

    team_id = group.rsplit(".", 1)[1]
    return team_id.isdigit() and (user.is_portal_admin or TeamMembership.objects.filter(
        team_id=int(team_id), user=user).exists())
