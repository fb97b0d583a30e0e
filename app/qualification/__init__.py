"""Monthly qualification (docs/design.md decision 4): who kept >= the threshold every calendar day.

Modules: ``months`` (the calendar and the closing rule), ``phones`` (bulk phone
re-validation), ``engine`` (the set-based statements' tallies), ``service`` (one run end
to end), ``schedule`` (which months are due), ``reports`` and ``progress`` (read-only
reports). All their SQL is in ``repository`` (``decisions``: the set-based statements;
``runs``: job_runs and the audited run summary; ``phone_verdicts``; ``reporting``).
"""
