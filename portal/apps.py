"""The wiring's app config: it holds no models, only the management commands that start and set up the whole portal."""

from django.apps import AppConfig


class WiringConfig(AppConfig):
    """`manage.py run`, `bootstrap` and `registry_config`: they compose every app, so they live with the wiring."""

    name = "portal"
    label = "wharf"
    verbose_name = "Wharf"
