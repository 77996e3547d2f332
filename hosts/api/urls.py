"""Routes of the hosts API under /api/v1/projects/{name}/hosts and /containers (added by the wiring)."""

from rest_framework.routers import SimpleRouter

from hosts.api import views

router = SimpleRouter(trailing_slash=False)
router.register(r"projects/(?P<project_name>[^/]+)/hosts", views.HostViewSet, basename="host")
router.register(r"projects/(?P<project_name>[^/]+)/containers", views.ContainerViewSet, basename="container")

urlpatterns: list = []
