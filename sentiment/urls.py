"""Staff pages, mounted at /admin/sentiment/ (before admin.site.urls) by config/urls.py."""

from django.contrib import admin
from django.urls import path

from . import views

app_name = "sentiment"
urlpatterns = [path("dashboard/", admin.site.admin_view(views.dashboard), name="dashboard")]
