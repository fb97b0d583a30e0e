"""Helpers shared by the test folders: factories, the carrier test account, process and
scrape helpers, query helpers."""
