"""Routes of the registries API under /api/v1/ (the wiring adds `router`'s routes after every app's paths)."""

from collections.abc import Callable

from django.http import HttpResponse
from django.urls import URLPattern, path, re_path
from rest_framework.routers import SimpleRouter

from registries.api import views

router = SimpleRouter(trailing_slash=False)
router.register("registries", views.GlobalRegistryViewSet, basename="registry")
router.register(
    r"projects/(?P<project_name>[^/]+)/registries", views.ProjectRegistryViewSet, basename="project-registry"
)

PROJECT = r"(?P<project_name>[^/]+)"
REPOSITORY = r"(?P<repository>.+?)"


def _repository_path(tail: str, view: Callable[..., HttpResponse], name: str) -> URLPattern:
    """A route under projects/<project>/repositories/<repository>, which holds slashes (sent as-is or as %2F)."""
    return re_path(rf"^projects/{PROJECT}/repositories/{REPOSITORY}{tail}$", view, name=name)


urlpatterns = [
    path("system/gc", views.GarbageCollectionView.as_view(), name="registry-gc"),
    path("system/gc/schedule", views.GcScheduleView.as_view(), name="registry-gc-schedule"),
    path("jobs/reconcile", views.ReconcileView.as_view(), name="registry-reconcile"),
    path("registries/verify", views.VerifyView.as_view(), name="registry-verify"),
    path("projects/<str:project_name>/images", views.ImageSearchView.as_view(), name="image-search"),
    re_path(
        rf"^projects/{PROJECT}/images/(?P<registry>[^/]+)/{REPOSITORY}/tags$",
        views.ImageTagsView.as_view(),
        name="image-tags",
    ),
    path("repositories", views.RepositoryLibraryView.as_view(), name="repository-library"),
    path(
        "projects/<str:project_name>/repositories",
        views.ProjectRepositoryViewSet.as_view({"get": "list"}),
        name="repository-list",
    ),
    # A tag name never holds a slash.
    _repository_path("/tags/(?P<tag>[^/]+)/details", views.TagDetailsView.as_view(), "tag-details"),
    _repository_path(
        "/tags/(?P<tag>[^/]+)", views.TagViewSet.as_view({"get": "retrieve", "delete": "destroy"}), "tag-detail"
    ),
    _repository_path("/tags", views.TagViewSet.as_view({"get": "list"}), "tag-list"),
    _repository_path("/signatures", views.RepositorySignaturesView.as_view(), "repository-signatures"),
    _repository_path(
        "", views.ProjectRepositoryViewSet.as_view({"get": "retrieve", "delete": "destroy"}), "repository-detail"
    ),
]
