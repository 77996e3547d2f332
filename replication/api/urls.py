"""Routes of the replication API under /api/v1/ (the wiring adds `router`'s routes after every app's paths)."""

from rest_framework.routers import SimpleRouter

from replication.api import views

router = SimpleRouter(trailing_slash=False)
router.register("replication/endpoints", views.EndpointViewSet, basename="replication-endpoint")
router.register("replication/rules", views.RuleViewSet, basename="replication-rule")
router.register("replication/executions", views.ExecutionViewSet, basename="replication-execution")
router.register(
    r"replication/executions/(?P<execution_id>[0-9]+)/tasks", views.TaskViewSet, basename="replication-task"
)
urlpatterns: list = []
