"""`manage.py apikey create USERNAME --name NAME` / `apikey revoke KEY_OR_PREFIX` / `apikey list`."""
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey, User
from accounts.teams.models import Team
from sparkportal.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create, revoke or list API keys."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key; the key alone is printed on the last line.")
        create.add_argument("username")
        create.add_argument("--name", required=True)
        create.add_argument("--scopes", default="", help="Comma-separated model names (default: all).")
        create.add_argument("--expires", default="", help="ISO date or datetime, e.g. 2027-01-31.")
        create.add_argument("--team", default="", help="Name of one of the user's teams, charged for the key's "
                                                         "requests (default: the user's only team, if any).")
        revoke = sub.add_parser("revoke", help="Revoke a key by the full key or its displayed prefix.")
        revoke.add_argument("key_or_prefix")
        listing = sub.add_parser("list", help="List keys.")
        listing.add_argument("--user", default="")

    def handle(self, *args, **options):
        try:
            getattr(self, f"_{options['action']}")(options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def _create(self, options):
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}: create it in Admin → Users first.")
        expires = self._parse_expiry(options["expires"])
        scopes = [s for s in options["scopes"].split(",") if s.strip()]
        key, raw = services.api_key_create(owner=user, name=options["name"], scopes=scopes, expires_at=expires,
                                           actor=user, ip=None, team_id=self._team_id(options["team"]))
        self.stdout.write(f"Created key {key.display} named {key.name!r} for {user.username}. "
                          "Store it now: it is not shown again.")
        self.stdout.write(raw)

    def _revoke(self, options):
        key = services.api_key_find(key_or_prefix=options["key_or_prefix"])
        if key.revoked_at is not None:
            self.stdout.write(f"Key {key.display} ({key.name}) was already revoked on {key.revoked_at:%Y-%m-%d %H:%M}.")
            return
        services.api_key_revoke(key=key, actor=None, ip=None)
        self.stdout.write(f"Revoked key {key.display} ({key.name}) of {key.owner.username}.")

    def _list(self, options):
        keys = ApiKey.objects.select_related("owner", "team")
        if options["user"]:
            keys = keys.filter(owner__username=options["user"])
        for key in keys:
            state = "revoked" if key.revoked_at else "active"
            team = key.team.name if key.team_id else "-"
            self.stdout.write(f"{key.display:18} {key.owner.username:16} {key.name:24} {team:16} {state}")

    @staticmethod
    def _team_id(name: str) -> int | None:
        if not name:
            return None
        team = Team.objects.filter(name=name).first()
        if team is None:
            raise CommandError(f"No team {name!r}: the Teams page lists them.")
        return team.pk

    @staticmethod
    def _parse_expiry(text: str) -> datetime | None:
        if not text:
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise CommandError(f"--expires {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM.") from None
        return value if value.tzinfo else timezone.make_aware(value, timezone.get_default_timezone())
