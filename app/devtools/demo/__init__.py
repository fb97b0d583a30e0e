"""The demo: generated customers, local stand-ins, the month through the production actors."""
