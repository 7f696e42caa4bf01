"""Routers: predictions, health/status, admin."""
