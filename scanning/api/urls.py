"""Routes of the scanning API under /api/v1/ (the wiring adds `router`'s routes after every app's paths)."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from scanning.api import views

router = SimpleRouter(trailing_slash=False)
router.register("scanners", views.ScannerViewSet, basename="scanner")
router.register("system/cve-allowlist", views.SystemAllowlistViewSet, basename="system-cve-allowlist")
router.register(
    r"projects/(?P<project_name>[^/]+)/cve-allowlist", views.ProjectAllowlistViewSet, basename="project-cve-allowlist"
)

urlpatterns = [
    # The repository holds slashes (sent as-is or as %2F), as in the registries API's tag routes; a tag never does.
    re_path(
        r"^projects/(?P<project_name>[^/]+)/repositories/(?P<repository>.+?)/tags/(?P<tag>[^/]+)/scan$",
        views.TagScanView.as_view(),
        name="tag-scan",
    ),
    path("projects/<str:project_name>/scanner", views.ProjectScannerView.as_view(), name="project-scanner"),
    path("scans/all", views.ScanAllView.as_view(), name="scan-all"),
    path("vulndb", views.FeedSourceListView.as_view(), name="vulndb"),
    path("vulndb/import", views.VulnDbImportView.as_view(), name="vulndb-import"),
    path("vulndb/update", views.VulnDbUpdateView.as_view(), name="vulndb-update"),
]
