"""Premium Customer Notification System: domain and data layer (no Dramatiq imports)."""
