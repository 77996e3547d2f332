"""Routes of the registry pages: Internal Repositories of a project, repository pages, the library, maintenance."""

from django.urls import path

from registries import ui_views, ui_views_external

# Repository names hold slashes, so they come last and the fixed actions sit behind a "-" segment no
# repository name component can be.
urlpatterns = [
    path("projects/<str:name>/repositories/", ui_views.project_repositories, name="project-repositories"),
    path("projects/<str:name>/repositories/-/delete/", ui_views.repository_delete, name="repository-delete"),
    path("projects/<str:name>/repositories/<path:repository>/-/delete-tag/", ui_views.tag_delete, name="tag-delete"),
    path("projects/<str:name>/repositories/<path:repository>/", ui_views.repository_detail, name="repository-detail"),
    path("library/repositories/", ui_views.library_repositories, name="library-repositories"),
    path("library/search/", ui_views_external.library_search, name="library-search"),
    path(
        "library/search/<str:name>/<str:registry>/<path:repository>/tags/",
        ui_views_external.library_tags,
        name="library-tags",
    ),
    path("registries/", ui_views_external.global_registries, name="global-registries"),
    path("registries/new/", ui_views_external.global_registry_add, name="global-registry-add"),
    path("registries/<int:pk>/toggle/", ui_views_external.registry_toggle, name="registry-toggle"),
    path("registries/<int:pk>/delete/", ui_views_external.registry_delete, name="registry-delete"),
    path("projects/<str:name>/registries/", ui_views_external.project_registries, name="project-registries"),
    path("projects/<str:name>/registries/new/", ui_views_external.project_registry_add, name="project-registry-add"),
    path("configuration/gc/run/", ui_views.gc_run, name="gc-run"),
    path("configuration/gc/schedule/", ui_views.gc_schedule, name="gc-schedule"),
    path("configuration/gc/jobs/<int:job_id>/row/", ui_views.gc_job_row, name="gc-job-row"),
    path("configuration/reconcile/", ui_views.registry_reconcile, name="registry-reconcile"),
]
