"""Daily balance checks: balance sources, the check writer, run fan-out/fan-in, gap repair."""
