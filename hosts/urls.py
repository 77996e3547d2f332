"""UI routes of the hosts app: the project selector, container hosts, containers, provisioning."""

from django.urls import path

from hosts import views

urlpatterns = [
    path("select-project/", views.select_project, name="select-project"),
    path("select-project/search/", views.project_search, name="project-search"),
    path("hosts/", views.host_list, name="host-list"),
    path("hosts/<int:pk>/", views.host_detail, name="host-detail"),
    path("hosts/<int:pk>/toggle/", views.host_toggle, name="host-toggle"),
    path("hosts/<int:pk>/check/", views.host_check, name="host-check"),
    path("hosts/<int:pk>/remove/", views.host_remove, name="host-remove"),
    path("projects/<str:name>/infrastructure/", views.project_infrastructure, name="project-infrastructure"),
    path("projects/<str:name>/hosts/new/", views.host_add, name="host-add"),
    path("containers/", views.container_list, name="container-list"),
    path("containers/bulk/<str:action>/", views.container_bulk_action, name="container-bulk-action"),
    path("containers/<int:pk>/", views.container_detail, name="container-detail"),
    path("containers/<int:pk>/logs/", views.container_logs, name="container-logs"),
    path("containers/<int:pk>/stats/", views.container_stats, name="container-stats"),
    path("containers/<int:pk>/<str:action>/", views.container_action, name="container-action"),
    path("containers/jobs/<int:job_id>/", views.job_panel, name="container-job"),
    path("projects/<str:name>/containers/new/", views.container_provision, name="container-provision"),
]
