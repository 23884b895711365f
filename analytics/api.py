"""REST API views of the analytics app (DRF APIViews with explicit serializers)."""
