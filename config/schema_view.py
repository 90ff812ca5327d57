"""/api/schema/ (the schema's content is config/schema.py's; this module only serves it)."""

from __future__ import annotations

import threading

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView

_generating = threading.Lock()


class SchemaView(SpectacularAPIView):
    """/api/schema/, generated one request at a time: drf-spectacular loads its extensions lazily and patches
    its settings while generating, so two first requests at once in a threaded worker answered 500."""

    @extend_schema(**SCHEMA_KWARGS)  # as the parent's: left out of the schema (SERVE_INCLUDE_SCHEMA)
    def get(self, request, *args, **kwargs):
        with _generating:
            return super().get(request, *args, **kwargs)
