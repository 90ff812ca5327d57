from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerSplitView

from . import errors, health
from .schema_view import SchemaView

admin.site.site_header = "Aisle back office"
admin.site.site_title = "Aisle admin"
admin.site.index_title = "Catalogue, orders, reviews and shoppers"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Staff dashboards live under /admin/ and must come before the admin's catch-all.
    path("admin/behavior/", include("behavior.urls")),
    path("admin/sentiment/", include("sentiment.urls")),
    path("admin/support/console/", include("support.agent_urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),  # generated one at a time (config/schema_view.py)
    # The split view serves Swagger UI's set-up script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/events/", include("behavior.api_urls")),
    path("api/sentiment/", include("sentiment.api_urls")),
    path("api/search/", include("search.api_urls")),
    path("api/support/", include("support.api_urls")),
    path("api/", include("shop.api_urls")),
    path("support/", include("support.urls")),
    path("", include("search.urls")),
    path("", include("shop.urls")),
]

handler404 = errors.handler404  # JSON on /api/ paths
handler500 = errors.handler500  # JSON on /api/ paths, 503 during an outage
