"""The site's routes: every app's UI, the registry's front door, and the REST API under /api/v1/.

Each app states its API in `<app>/api/urls.py`: `urlpatterns` (explicit paths) and a `router`.
The explicit paths of every app come first, then one DefaultRouter holding every app's
registrations (it serves the API root), so a fixed path such as `jobs/reconcile` is never taken
for a detail route such as `jobs/{id}`.
"""

from importlib import import_module

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

# Scanning's explicit paths come before the registries': its route under a tag (/repositories/{repo}/tags/{tag}/scan)
# would otherwise be taken for a repository's detail, whose name may hold slashes.
API_APPS = ("portal.core", "projects", "scanning", "registries", "hosts", "replication")
UI_APPS = ("registries", "hosts", "replication", "scanning", "portal.core", "projects")


def api_patterns() -> list:
    """Every app's explicit API paths, then one router with every app's viewsets."""
    router = DefaultRouter(trailing_slash=False)
    patterns: list = [
        path("schema/", SpectacularAPIView.as_view(), name="schema"),
        # The split view loads its start-up script from a URL rather than inline, as the Content-Security-Policy needs.
        path(
            "docs/",
            SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="portal/swagger_ui.html"),
            name="swagger-ui",
        ),
    ]
    for app in API_APPS:
        module = import_module(f"{app}.api.urls")
        patterns += module.urlpatterns
        router.registry.extend(module.router.registry)
    return patterns + router.urls


# A path under /api/ that no route matches (an id that is not a number) answers JSON like the API's own 404s.
handler404 = "portal.core.errors.page_not_found"

urlpatterns = [
    path("api/v1/", include(api_patterns())),
    # The built-in scanner as a Harbor pluggable scanner adapter (scanning/api/adapter_views.py).
    path("scanner/api/v1/", include("scanning.api.adapter_urls")),
    path("", include("registries.endpoints")),
    *(path("", include(f"{app}.urls")) for app in UI_APPS),
]
