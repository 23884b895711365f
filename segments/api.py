"""REST API views of the segments app (DRF APIViews with explicit serializers)."""
