"""UI routes of scanning. A repository's scan pages sit under /projects/<name>/vulnerabilities/ because the
registries' repository page takes every path under /projects/<name>/repositories/."""

from django.urls import path

from scanning import views

# Its bodies may be far longer than other requests' (see ScanningConfig.ready).
VULNDB_UPLOAD_PATH = "configuration/scanning/vulndb/upload/"
urlpatterns = [
    path("projects/<str:name>/vulnerabilities/<path:repository>/-/scan/", views.tag_scan, name="tag-scan"),
    path(
        "projects/<str:name>/vulnerabilities/<path:repository>/-/tags/<str:tag>/",
        views.tag_report,
        name="tag-vulnerabilities",
    ),
    path(
        "projects/<str:name>/vulnerabilities/<path:repository>/-/tags/<str:tag>/cell/",
        views.tag_vulnerability_cell,
        name="tag-vulnerability-cell",
    ),
    path("projects/<str:name>/cve-allowlist/add/", views.project_allowlist_add, name="project-allowlist-add"),
    path(
        "projects/<str:name>/cve-allowlist/<int:pk>/remove/",
        views.project_allowlist_remove,
        name="project-allowlist-remove",
    ),
    path("configuration/scanning/scan-all/", views.scan_all, name="scan-all"),
    path("configuration/scanning/vulndb/update/", views.vulndb_update, name="vulndb-update"),
    path(VULNDB_UPLOAD_PATH, views.vulndb_upload, name="vulndb-upload"),
    path("configuration/scanning/scanners/add/", views.scanner_add, name="scanner-add"),
    path("configuration/scanning/scanners/<str:name>/edit/", views.scanner_edit, name="scanner-edit"),
    path("configuration/scanning/scanners/<str:name>/test/", views.scanner_test, name="scanner-test"),
    path("configuration/scanning/scanners/<str:name>/default/", views.scanner_default, name="scanner-default"),
    path("configuration/scanning/scanners/<str:name>/delete/", views.scanner_delete, name="scanner-delete"),
    path("projects/<str:name>/scanner/", views.project_scanner, name="project-scanner-pick"),
    path("configuration/cve-allowlist/add/", views.system_allowlist_add, name="system-allowlist-add"),
    path("configuration/cve-allowlist/<int:pk>/remove/", views.system_allowlist_remove, name="system-allowlist-remove"),
]
