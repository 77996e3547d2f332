"""Top-level routes: the UI, and the REST API under /api/v1/."""

from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("portal.api_urls")),
    path("", include("registries.urls")),
    path("", include("registries.ui_urls")),
    path("", include("hosts.ui_urls")),
    path("", include("portal.ui_urls")),
    path("projects/", include("projects.urls")),
]
