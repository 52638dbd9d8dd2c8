"""Grafana provisioning generated as code: dashboards and alert rules (`wikistreams-grafana`)."""
