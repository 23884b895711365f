"""Pages of delivery for the workspace's people: messages, dead letters, channels."""

urlpatterns: list = []
