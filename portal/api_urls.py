"""Routes of the REST API under /api/v1/."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from portal import api
from projects.api import MemberViewSet, ProjectViewSet

router = DefaultRouter(trailing_slash=False)
router.register("projects", ProjectViewSet, basename="project")
router.register(r"projects/(?P<project_name>[^/]+)/members", MemberViewSet, basename="member")
router.register("users", api.UserViewSet, basename="user")
router.register("groups", api.GroupViewSet, basename="group")
router.register("audit-logs", api.AuditEventViewSet, basename="auditevent")
router.register("tokens", api.TokenViewSet, basename="token")
router.register("jobs", api.JobViewSet, basename="job")

urlpatterns = [
    path("systeminfo", api.systeminfo, name="systeminfo"),
    path("systeminfo/ca", api.systeminfo_ca, name="systeminfo-ca"),
    path("settings", api.SettingsView.as_view(), name="settings"),
    path("identities", api.IdentityView.as_view(), name="identities"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include(router.urls)),
]
