from django.urls import path

from .api import EventBatchView

urlpatterns = [path("batch", EventBatchView.as_view(), name="events-batch")]
