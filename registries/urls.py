"""Routes of the registry pages: Internal Repositories of a project, repository pages, the library, maintenance."""

from django.urls import path

from registries import views

# Repository names hold slashes, so they come last and the fixed actions sit behind a "-" segment no
# repository name component can be.
urlpatterns = [
    path("projects/<str:name>/repositories/", views.project_repositories, name="project-repositories"),
    path("projects/<str:name>/repositories/-/delete/", views.repository_delete, name="repository-delete"),
    path("projects/<str:name>/repositories/<path:repository>/-/delete-tag/", views.tag_delete, name="tag-delete"),
    path(
        "projects/<str:name>/repositories/<path:repository>/-/tags/<str:tag>/",
        views.tag_detail,
        name="tag-detail",
    ),
    path("projects/<str:name>/repositories/<path:repository>/", views.repository_detail, name="repository-detail"),
    path("library/repositories/", views.library_repositories, name="library-repositories"),
    path("library/search/", views.library_search, name="library-search"),
    path(
        "library/search/<str:name>/<str:registry>/<path:repository>/tags/",
        views.library_tags,
        name="library-tags",
    ),
    path("registries/", views.global_registries, name="global-registries"),
    path("registries/new/", views.global_registry_add, name="global-registry-add"),
    path("registries/<int:pk>/edit/", views.registry_edit, name="registry-edit"),
    path("registries/<int:pk>/toggle/", views.registry_toggle, name="registry-toggle"),
    path("registries/<int:pk>/delete/", views.registry_delete, name="registry-delete"),
    path("projects/<str:name>/registries/", views.project_registries, name="project-registries"),
    path("projects/<str:name>/registries/new/", views.project_registry_add, name="project-registry-add"),
    path("configuration/gc/run/", views.gc_run, name="gc-run"),
    path("configuration/gc/schedule/", views.gc_schedule, name="gc-schedule"),
    path("configuration/gc/jobs/<int:job_id>/row/", views.gc_job_row, name="gc-job-row"),
    path("configuration/reconcile/", views.registry_reconcile, name="registry-reconcile"),
]
