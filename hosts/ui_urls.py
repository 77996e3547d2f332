"""UI routes of the hosts app: the project selector, container hosts, containers, provisioning."""

from django.urls import path

from hosts import views_containers, views_hosts

urlpatterns = [
    path("select-project/", views_hosts.select_project, name="select-project"),
    path("hosts/", views_hosts.host_list, name="host-list"),
    path("hosts/<int:pk>/", views_hosts.host_detail, name="host-detail"),
    path("hosts/<int:pk>/toggle/", views_hosts.host_toggle, name="host-toggle"),
    path("hosts/<int:pk>/check/", views_hosts.host_check, name="host-check"),
    path("hosts/<int:pk>/remove/", views_hosts.host_remove, name="host-remove"),
    path("projects/<str:name>/infrastructure/", views_hosts.project_infrastructure, name="project-infrastructure"),
    path("projects/<str:name>/hosts/new/", views_hosts.host_add, name="host-add"),
    path("containers/", views_containers.container_list, name="container-list"),
    path("containers/<int:pk>/", views_containers.container_detail, name="container-detail"),
    path("containers/<int:pk>/logs/", views_containers.container_logs, name="container-logs"),
    path("containers/<int:pk>/stats/", views_containers.container_stats, name="container-stats"),
    path("containers/<int:pk>/<str:action>/", views_containers.container_action, name="container-action"),
    path("containers/jobs/<int:job_id>/", views_containers.job_panel, name="container-job"),
    path("projects/<str:name>/containers/new/", views_containers.container_provision, name="container-provision"),
]
