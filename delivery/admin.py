"""Django admin registrations of the delivery app."""
