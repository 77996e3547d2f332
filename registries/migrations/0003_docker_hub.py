"""Docker Hub is present as an enabled global registry from the start (it can be disabled)."""

from django.db import migrations

DOCKER_HUB = "https://registry.hub.docker.com"


def add_docker_hub(apps, schema_editor):
    """Create the Docker Hub global registry unless one by that name exists."""
    ExternalRegistry = apps.get_model("registries", "ExternalRegistry")
    if not ExternalRegistry.objects.filter(project__isnull=True, name="docker-hub").exists():
        ExternalRegistry.objects.create(
            name="docker-hub", address=DOCKER_HUB, enabled=True, api_version="v2", auth_type="bearer"
        )


def remove_docker_hub(apps, schema_editor):
    """Undo: remove the default Docker Hub entry."""
    apps.get_model("registries", "ExternalRegistry").objects.filter(project__isnull=True, address=DOCKER_HUB).delete()


class Migration(migrations.Migration):
    dependencies = [("registries", "0002_external_registry")]

    operations = [migrations.RunPython(add_docker_hub, remove_docker_hub)]
