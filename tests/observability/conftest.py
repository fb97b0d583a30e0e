"""Observability tests: health endpoints, guards over the docs and dashboards, live monitoring."""
