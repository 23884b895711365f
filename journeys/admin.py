"""Django admin registrations of the journeys app."""
