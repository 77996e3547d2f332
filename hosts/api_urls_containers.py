"""API routes for containers under /api/v1/projects/{name}/containers."""

from rest_framework.routers import SimpleRouter

from hosts.api_containers import ContainerViewSet

# SimpleRouter, not DefaultRouter: the API root view belongs to the portal's router.
router = SimpleRouter(trailing_slash=False)
router.register(r"projects/(?P<project_name>[^/]+)/containers", ContainerViewSet, basename="container")

urlpatterns: list = router.urls
