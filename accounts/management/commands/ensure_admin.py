"""Create the first admin (username `admin`) if there is none; print a generated password once."""
import os

from django.core.management.base import BaseCommand

from accounts import services


class Command(BaseCommand):
    help = "Create the first admin if no admin exists (password from PORTAL_ADMIN_PASSWORD or generated)."

    def handle(self, *args, **options):
        user, generated = services.admin_ensure(password=os.environ.get("PORTAL_ADMIN_PASSWORD") or None)
        if generated:
            self.stdout.write(self.style.WARNING(
                f"Created the first admin: username 'admin', password '{generated}' (shown only this once; "
                "change it under Password after logging in)."))
        elif os.environ.get("PORTAL_ADMIN_PASSWORD") and user.check_password(os.environ["PORTAL_ADMIN_PASSWORD"]):
            self.stdout.write("Admin account exists.")
        else:
            self.stdout.write(f"Admin account {user.username!r} exists.")
