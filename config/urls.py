from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .views import healthz

admin.site.site_header = "Aisle back office"
admin.site.site_title = "Aisle admin"
admin.site.index_title = "Catalogue, orders, reviews and shoppers"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Staff dashboards live under /admin/ and must come before the admin's catch-all.
    path("admin/behavior/", include("behavior.urls")),
    path("admin/sentiment/", include("sentiment.urls")),
    path("admin/support/console/", include("support.agent_urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/events/", include("behavior.api_urls")),
    path("api/sentiment/", include("sentiment.api_urls")),
    path("api/search/", include("recommend.api_urls")),
    path("api/support/", include("support.api_urls")),
    path("api/", include("shop.api_urls")),
    path("support/", include("support.urls")),
    path("", include("shop.urls")),
]
