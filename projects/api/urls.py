"""Routes of the projects API under /api/v1/ (the wiring adds `router`'s routes after every app's paths)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from projects.api import views

router = SimpleRouter(trailing_slash=False)
router.register("projects", views.ProjectViewSet, basename="project")
router.register(r"projects/(?P<project_name>[^/]+)/members", views.MemberViewSet, basename="member")

urlpatterns = [
    path("users/<str:name>/projects", views.MemberProjectsView.as_view(kind="user"), name="user-projects"),
    path(
        "groups/<str:name>/projects",
        views.MemberProjectsView.as_view(kind="group", http_method_names=["put", "options"]),
        name="group-projects",
    ),
]
