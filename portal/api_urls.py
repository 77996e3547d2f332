"""Routes of the REST API under /api/v1/."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from portal import api, api_credentials
from projects.api import MemberViewSet, ProjectViewSet
from registries import api as registry_api
from registries import api_external

router = DefaultRouter(trailing_slash=False)
router.register("projects", ProjectViewSet, basename="project")
router.register(r"projects/(?P<project_name>[^/]+)/members", MemberViewSet, basename="member")
router.register("users", api.UserViewSet, basename="user")
router.register("groups", api.GroupViewSet, basename="group")
router.register("audit-logs", api.AuditEventViewSet, basename="auditevent")
router.register("tokens", api.TokenViewSet, basename="token")
router.register("jobs", api.JobViewSet, basename="job")
router.register("credentials", api_credentials.CredentialViewSet, basename="credential")
router.register("certificates", api_credentials.CertificateViewSet, basename="certificate")
router.register("registries", api_external.GlobalRegistryViewSet, basename="registry")
router.register(
    r"projects/(?P<project_name>[^/]+)/registries", api_external.ProjectRegistryViewSet, basename="project-registry"
)

PROJECT = r"(?P<project_name>[^/]+)"
REPOSITORY = r"(?P<repository>.+?)"

urlpatterns = [
    path("systeminfo", api.systeminfo, name="systeminfo"),
    path("systeminfo/ca", api.systeminfo_ca, name="systeminfo-ca"),
    path("settings", api.SettingsView.as_view(), name="settings"),
    path("identities", api.IdentityView.as_view(), name="identities"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("system/gc", registry_api.GarbageCollectionView.as_view(), name="registry-gc"),
    path("system/gc/schedule", registry_api.GcScheduleView.as_view(), name="registry-gc-schedule"),
    path("jobs/reconcile", registry_api.ReconcileView.as_view(), name="registry-reconcile"),
    path("registries/verify", api_external.VerifyView.as_view(), name="registry-verify"),
    path("projects/<str:project_name>/images", api_external.ImageSearchView.as_view(), name="image-search"),
    re_path(
        rf"^projects/{PROJECT}/images/(?P<registry>[^/]+)/{REPOSITORY}/tags$",
        api_external.ImageTagsView.as_view(),
        name="image-tags",
    ),
    path("repositories", registry_api.RepositoryLibraryView.as_view(), name="repository-library"),
    path(
        "projects/<str:project_name>/repositories",
        registry_api.ProjectRepositoryViewSet.as_view({"get": "list"}),
        name="repository-list",
    ),
    # Repository names hold slashes (sent as-is or as %2F), and a tag name never does.
    re_path(
        rf"^projects/{PROJECT}/repositories/{REPOSITORY}/tags/(?P<tag>[^/]+)$",
        registry_api.TagViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="tag-detail",
    ),
    re_path(
        rf"^projects/{PROJECT}/repositories/{REPOSITORY}/tags$",
        registry_api.TagViewSet.as_view({"get": "list"}),
        name="tag-list",
    ),
    re_path(
        rf"^projects/{PROJECT}/repositories/{REPOSITORY}$",
        registry_api.ProjectRepositoryViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="repository-detail",
    ),
    path("", include("hosts.api_urls")),
    path("", include(router.urls)),
]
