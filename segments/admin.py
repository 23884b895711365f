"""Django admin registrations of the segments app."""
