from django.urls import path

from .api import ProductSentimentSummaryView

urlpatterns = [
    path("products/<slug:slug>/summary", ProductSentimentSummaryView.as_view(), name="sentiment-product-summary"),
]
