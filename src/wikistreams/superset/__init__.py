"""Superset: the dashboard bundle (render, import, export) and the config Superset loads."""
