"""Delivery tracking: polling the carrier until every submitted SMS has a final status."""
