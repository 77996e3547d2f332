"""The scanning app config."""

from django.apps import AppConfig


class ScanningConfig(AppConfig):
    """Vulnerability scanning: the indexer, the vulnerability database and its updaters, the matcher, scan jobs
    and scanner adapters."""

    name = "scanning"
