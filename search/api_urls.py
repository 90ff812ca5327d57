"""URLs of the search API, mounted at /api/search/ (before the shop's /api/ routes)."""

from django.urls import path

from . import api

app_name = "search-api"
urlpatterns = [
    path("", api.SearchView.as_view(), name="search"),
    path("autocomplete", api.AutocompleteView.as_view(), name="autocomplete"),
]
