"""The registries app config."""

from django.apps import AppConfig


class RegistriesConfig(AppConfig):
    """The integrated registry, its token service and proxy, and external registries."""

    name = "registries"
