"""Routes of the hosts app under /api/v1/: hosts (hosts/api.py) and containers (hosts/api_containers.py)."""

from django.urls import include, path

urlpatterns = [
    path("", include("hosts.api_urls_hosts")),
    path("", include("hosts.api_urls_containers")),
]
