"""REST API views of the delivery app (DRF APIViews with explicit serializers)."""
