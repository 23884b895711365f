"""REST API views of the journeys app (DRF APIViews with explicit serializers)."""
