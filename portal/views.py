"""Administration UI pages of the core."""

from __future__ import annotations

from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.certificates import ca_info


class LoginView(auth_views.LoginView):
    """The login page, showing the portal CA's thumbprints and a link to download it."""

    template_name = "portal/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        return {**super().get_context_data(**kwargs), "ca": ca_info()}


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Log out and return to the login page."""
    logout(request)
    return redirect("login")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The landing page after login."""
    return render(request, "portal/home.html")
