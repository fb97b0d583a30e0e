"""SQL of the qualification stage; the caller owns the transaction (nothing here commits).

Modules: ``decisions`` (the set-based deciding statements and the month's lock), ``runs``
(job_runs rows and the audited run summary), ``phone_verdicts`` (bulk phone
re-validation of the customers a month evaluates), ``reporting`` (read-only month
reports and in-month progress).
"""
