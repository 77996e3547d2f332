"""`manage.py bootstrap`: the first-start setup without starting anything (used by containers)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.bootstrap import bootstrap


class Command(BaseCommand):
    """Create the PKI, admin user, default-project and schedules when missing."""

    help = "Create the portal CA, admin user, default-project and schedules if they do not exist."

    def handle(self, *args: object, **options: object) -> None:
        result = bootstrap(example_users=settings.EXAMPLE_USERS)
        if result.admin_password:
            self.stdout.write(f"admin user: admin / {result.admin_password}   (shown once)")
        for username, password in result.example_passwords.items():
            self.stdout.write(f"example user: {username} / {password}")
