"""Django admin registrations of the content app."""
