"""Routes of the project pages (under /projects/); '-' cannot start a project name, so it marks non-project pages."""

from django.urls import path

from projects import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("-/new/", views.project_create, name="project-create"),
    path("<str:name>/", views.project_detail, name="project-detail"),
    path("<str:name>/delete/", views.project_delete, name="project-delete"),
    path("<str:name>/members/", views.project_members, name="project-members"),
    path("<str:name>/members/search/", views.member_search, name="member-search"),
    path("<str:name>/members/add/", views.member_add, name="member-add"),
    path("<str:name>/members/edit/", views.member_edit, name="member-edit"),
    path("<str:name>/members/remove/", views.member_remove, name="member-remove"),
    path("<str:name>/configuration/", views.project_configuration, name="project-configuration"),
    path("<str:name>/logs/", views.project_logs, name="project-logs"),
]
