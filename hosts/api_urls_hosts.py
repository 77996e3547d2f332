"""API routes for container hosts under /api/v1/projects/{name}/hosts."""

from rest_framework.routers import SimpleRouter

from hosts.api import HostViewSet

# SimpleRouter, not DefaultRouter: the API root view belongs to the portal's router.
router = SimpleRouter(trailing_slash=False)
router.register(r"projects/(?P<project_name>[^/]+)/hosts", HostViewSet, basename="host")

urlpatterns: list = router.urls
