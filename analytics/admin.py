"""Django admin registrations of the analytics app."""
