"""Staff dashboards (mounted under /admin/sentiment/ and wrapped in admin_view: staff only)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from shop import services as shop

from . import analytics
from .forms import DashboardFilterForm


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("sentiment.view_reviewsentiment"):
        raise PermissionDenied
    form = DashboardFilterForm(request.GET, category_tree=shop.category_tree(), brands=analytics.brands())
    context = {**admin.site.each_context(request), "title": "Review sentiment", "form": form}
    if not form.is_valid():
        messages.error(request, "Some filters are not valid; fix them and try again.")
        return render(request, "sentiment/dashboard.html", context, status=400)
    board = analytics.dashboard(form.filters())
    return render(request, "sentiment/dashboard.html", {**context, "board": board})
