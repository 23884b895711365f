"""REST API views of the content app (DRF APIViews with explicit serializers)."""
