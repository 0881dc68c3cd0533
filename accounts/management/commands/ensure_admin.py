"""Create the first admin (username `admin`) if there is none; print a generated password once."""
import os

from django.core.management.base import BaseCommand

from accounts import services

RESET_COMMAND = ".venv/bin/python manage.py changepassword admin"


def password_notice(password: str) -> str:
    """The generated password framed, with the way to reset it: `make run` prints it after the other
    processes' start-up lines so it does not scroll away."""
    lines = [f"First admin created: username 'admin', password '{password}'",
             "It is shown only this once. Change it under Password after logging in,",
             f"or reset it at any time with: {RESET_COMMAND}"]
    width = max(len(line) for line in lines) + 4
    rule = "=" * width
    return "\n".join([rule, *(f"| {line.ljust(width - 4)} |" for line in lines), rule])


class Command(BaseCommand):
    help = "Create the first admin if no admin exists (password from PORTAL_ADMIN_PASSWORD or generated)."

    def handle(self, *args, **options):
        user, generated = services.admin_ensure(password=os.environ.get("PORTAL_ADMIN_PASSWORD") or None)
        if generated:
            self.stdout.write(self.style.WARNING(password_notice(generated)))
        elif os.environ.get("PORTAL_ADMIN_PASSWORD") and user.check_password(os.environ["PORTAL_ADMIN_PASSWORD"]):
            self.stdout.write("Admin account exists.")
        else:
            self.stdout.write(f"Admin account {user.username!r} exists (reset its password with {RESET_COMMAND}).")
