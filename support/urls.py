"""Shopper-facing support pages, mounted at /support/ by config/urls.py."""

from django.urls import path

from . import views

app_name = "support"
urlpatterns = [
    path("", views.chat, name="chat"),
    path("help/", views.help_index, name="help"),
    path("help/<slug:slug>/", views.article, name="article"),
]
