"""Routes of the Harbor scanner-adapter API the built-in scanner serves; the wiring mounts them at /scanner/api/v1/
(Harbor calls `<registered URL>/api/v1/...`, so the scanner is registered in Harbor as https://<portal>/scanner)."""

from django.urls import path

from scanning.api import adapter_views

urlpatterns = [
    path("metadata", adapter_views.MetadataView.as_view(), name="scanner-adapter-metadata"),
    path("scan", adapter_views.ScanView.as_view(), name="scanner-adapter-scan"),
    path("scan/<str:scan_id>/report", adapter_views.ReportView.as_view(), name="scanner-adapter-report"),
]
