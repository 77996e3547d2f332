"""UI routes of replication: Global Registries' Replication Endpoints and Rules, a project's Replication tab, and
the execution pages."""

from django.urls import path

from replication import views

urlpatterns = [
    path("registries/replication/endpoints/", views.endpoint_list, name="replication-endpoints"),
    path("registries/replication/endpoints/new/", views.endpoint_add, name="replication-endpoint-add"),
    path("registries/replication/endpoints/edit/", views.endpoint_edit, name="replication-endpoint-edit"),
    path("registries/replication/endpoints/delete/", views.endpoint_delete, name="replication-endpoint-delete"),
    path("registries/replication/rules/", views.rule_list, name="replication-rules"),
    path("registries/replication/rules/new/", views.rule_add, name="replication-rule-add"),
    path("registries/replication/rules/edit/", views.rule_edit, name="replication-rule-edit"),
    path("registries/replication/rules/action/", views.rule_action, name="replication-rule-action"),
    path("registries/replication/rules/delete/", views.rule_delete, name="replication-rule-delete"),
    path("registries/replication/rules/<int:pk>/run/", views.rule_run, name="replication-rule-run"),
    path("projects/<str:name>/replication/", views.project_replication, name="project-replication"),
    path("replication/executions/<int:pk>/", views.execution_detail, name="replication-execution"),
    path("replication/executions/<int:pk>/panel/", views.execution_panel, name="replication-execution-panel"),
    path("replication/executions/<int:pk>/stop/", views.execution_stop, name="replication-execution-stop"),
    path("replication/executions/<int:pk>/retry/", views.execution_retry, name="replication-execution-retry"),
    path("replication/executions/<int:pk>/tasks/<int:task_id>/log/", views.task_log, name="replication-task-log"),
    path("replication/executions/<int:pk>/tasks/<int:task_id>/panel/", views.task_panel, name="replication-task-panel"),
]
