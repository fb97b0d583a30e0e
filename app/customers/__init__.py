"""Customer import (CSV, bulk upsert by account number)."""
