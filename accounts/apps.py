from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import receivers, revocation  # noqa: F401  (receivers: login/logout audit)
        from sparkportal import events

        revocation.receivers_connect()
        events.register_group("accounts.user", lambda user, group: group == f"accounts.user.{user.pk}")
