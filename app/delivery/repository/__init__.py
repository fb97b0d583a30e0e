"""SQL of the delivery stage; the caller owns the transaction (nothing here commits).

Modules: ``tracking`` (submitted messages with their latest state, the days due for a
check), ``history`` (recording carrier reports, first final status wins), ``runs`` (a
day's poll runs and its advisory lock), ``reports`` (read-only failure reports).
"""
