"""Routes of the home page, the project pages (under /projects/; '-' cannot start a project name, so it marks
non-project pages) and the Assign Project Roles dialog of Users & Groups."""

from django.urls import path

from projects import views

urlpatterns = [
    path("", views.home, name="home"),
    path("identities/projects/", views.identity_projects, name="identity-projects"),
    path("identities/projects/row/", views.identity_project_row, name="identity-project-row"),
    path("projects/", views.project_list, name="project-list"),
    path("projects/-/new/", views.project_create, name="project-create"),
    path("projects/<str:name>/", views.project_detail, name="project-detail"),
    path("projects/<str:name>/delete/", views.project_delete, name="project-delete"),
    path("projects/<str:name>/members/", views.project_members, name="project-members"),
    path("projects/<str:name>/members/search/", views.member_search, name="member-search"),
    path("projects/<str:name>/members/add/", views.member_add, name="member-add"),
    path("projects/<str:name>/members/edit/", views.member_edit, name="member-edit"),
    path("projects/<str:name>/members/remove/", views.member_remove, name="member-remove"),
    path("projects/<str:name>/configuration/", views.project_configuration, name="project-configuration"),
    path("projects/<str:name>/logs/", views.project_logs, name="project-logs"),
]
