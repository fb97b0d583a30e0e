"""Every Prometheus metric of the system, in one module (label values: never personal data).

In worker and scheduler processes ``PROMETHEUS_MULTIPROC_DIR`` must be set before
anything imports ``prometheus_client`` (docs/design.md trap), so this module is imported
only after the process entry point has set it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Exported metric families on no Grafana panel, each with the reason (a test checks that
# every other family, here, in app/observability/job_runs.py and in the backup textfile,
# is on a dashboard).
INTERNAL: dict[str, str] = {}

# Multiprocess modes (why): counters/histograms sum over processes; timestamps of
# successes take the max; *sampled* gauges (queue depth, pending rows, DLQ size) use
# "mostrecent", because "max" would keep a dead process's old, higher sample forever.

# --- balance checks ------------------------------------------------------------------
BALANCE_CHECKS = Counter(
    "pn_balance_checks_total",
    "Balance checks written, by result (pass/fail) and data-quality flag (or 'none').",
    ["result", "flag"],
)
BALANCE_MISSING = Counter(
    "pn_balance_missing_total",
    "Accounts the balance source gave no balance for, by reason code.",
    ["source", "reason"],
)
BALANCE_SOURCE_REQUEST_SECONDS = Histogram(
    "pn_balance_source_request_seconds",
    "Latency of one batched request to a balance source.",
    ["source"],
)

# --- scheduled jobs --------------------------------------------------------------------
# The label is ``pn_job``, not ``job``: Prometheus owns ``job`` (the scrape job) and,
# without honor_labels, would rename ours to ``exported_job`` (docs/observability.md).
# Freshness (last success, last failure, last run's duration) is NOT kept here: it
# depends on which process ran the job. The scheduler's exporter reads it from job_runs
# at scrape time (app/observability/job_runs.py), so CLI runs count too.
JOB_DURATION_SECONDS = Histogram(
    "pn_job_duration_seconds",
    "Duration of a job run seen by this process group (balance_checks, qualification, ...).",
    ["pn_job"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
JOB_RUNS = Counter(
    "pn_job_runs_total",
    "Job runs finished by this process group, by outcome.",
    ["pn_job", "outcome"],
)

# --- qualification -------------------------------------------------------------------
QUALIFIED = Counter("pn_customers_qualified_total", "Customers qualified.")
DISQUALIFIED = Counter(
    "pn_customers_disqualified_total", "Customers disqualified, by reason code.", ["reason"]
)
MISSING_DATA_CUSTOMERS = Gauge(
    "pn_qualification_missing_data_customers",
    "Customers of the last qualification run with gaps that could not be filled.",
    multiprocess_mode="mostrecent",
)

# --- SMS -------------------------------------------------------------------------------
SMS_SUBMISSIONS = Counter(
    "pn_sms_submissions_total",
    "SMS submission outcomes by status and carrier error code ('none' if no error).",
    ["status", "error_code"],
)
SMS_SEGMENTS = Counter("pn_sms_segments_total", "Message segments submitted to the carrier.")
CARRIER_REQUEST_SECONDS = Histogram(
    "pn_carrier_request_seconds",
    "Latency of carrier API calls, by operation (create, fetch, list).",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMIT_WAITS = Counter(
    "pn_rate_limit_waits_total", "Times a worker had to wait for a rate limiter.", ["limiter"]
)

# --- delivery --------------------------------------------------------------------------
DELIVERY_STATUSES = Counter(
    "pn_delivery_statuses_total",
    "Delivery status changes recorded, by new status and whether it is final ('true'/'false'):"
    " Unknown is final only when the deadline gave it, not for a carrier word we do not map.",
    ["status", "final"],
)


def count_delivery_status(status: str, final: bool) -> None:
    DELIVERY_STATUSES.labels(status, "true" if final else "false").inc()


# pn_notifications_pending [state, age] is read from the database at scrape time by the
# scheduler (app/observability/job_runs.py), like job freshness.
DELIVERY_CARRIER_CALLS = Counter(
    "pn_delivery_carrier_calls_total",
    "Carrier calls made by delivery polling, by operation (list page, fetch).",
    ["operation"],
)

# --- reliability ---------------------------------------------------------------------
RECONCILER_ACTIONS = Counter(
    "pn_reconciler_actions_total", "Actions taken by reconcilers.", ["reconciler", "action"]
)
DLQ_SIZE = Gauge(
    "pn_dlq_messages",
    "Dead-lettered messages per queue.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
QUEUE_DEPTH = Gauge(
    "pn_queue_depth", "Messages waiting per queue.", ["queue"], multiprocess_mode="mostrecent"
)
QUEUE_OLDEST_AGE = Gauge(
    "pn_queue_oldest_message_age_seconds",
    "Age of the oldest waiting message per queue.",
    ["queue"],
    multiprocess_mode="mostrecent",
)

# --- qualification: phone re-validation (issue 4) ------------------------------------
PHONES_REVALIDATED = Counter(
    "pn_phones_revalidated_total",
    "Customers whose phone verdict a qualification run recomputed, by verdict status.",
    ["status"],
)

# --- the observability machinery itself (issue 7) -----------------------------------
BUILD_INFO = Gauge(
    "pn_build_info",
    "Always 1; the version and process role of every exporting process group.",
    ["version", "role"],
    multiprocess_mode="max",
)
METRICS_REFRESH_ERRORS = Counter(
    "pn_metrics_refresh_errors_total",
    "Scrape-time samplers (queue stats) that failed; the scrape still answered.",
    ["source"],
)
SCHEDULER_KICKS = Counter(
    "pn_scheduler_kicks_total", "Periodic kicks the scheduler (periodiq) enqueued.", ["actor"]
)
SCHEDULER_LAST_KICK = Gauge(
    "pn_scheduler_last_kick_timestamp_seconds",
    "Unix time of the last kick of each periodic actor.",
    ["actor"],
    multiprocess_mode="max",
)
QUEUE_STATS_TIMESTAMP = Gauge(
    "pn_queue_stats_timestamp_seconds",
    "Unix time the queue depth / DLQ / oldest-age gauges were last sampled from Redis.",
    multiprocess_mode="max",
)

BROKER_MESSAGES_REFUSED = Counter(
    "pn_broker_messages_refused_total",
    "Broker messages a worker refused and dead-lettered without running them, by queue and "
    "reason (unsigned, bad_signature, invalid_arguments).",
    ["queue", "reason"],
)

# --- operations: retention (issue 8) ---------------------------------------------------
RETENTION_ROWS = Counter(
    "pn_retention_rows_total",
    "Rows the retention job moved to archive tables or deleted, by table and action.",
    ["table", "action"],
)

# --- status callbacks (issue 19: app/callbacks) ------------------------------------------
CALLBACK_REQUESTS = Counter(
    "pn_callback_requests_total",
    "Requests to the callback receiver, by endpoint (status, inbound, other) and answer "
    "(accepted, forbidden, too_large, rate_limited, bad_request, unavailable, error).",
    ["endpoint", "answer"],
)
CALLBACK_RECEIPTS = Counter(
    "pn_callback_receipts_total",
    "Stored callback receipts, by kind (status, inbound) and what applying them did.",
    ["kind", "outcome"],
)
CALLBACK_SECONDS = Histogram(
    "pn_callback_request_seconds",
    "Time from a callback's arrival to its answer (signature, storing, applying).",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# --- campaign controls (issue 20: app/campaign) -------------------------------------------
SMS_PAUSED = Gauge(
    "pn_sms_paused",
    "1 while SMS sending is paused (the kill switch as senders and the reconciler last "
    "read it from the database), else 0.",
    multiprocess_mode="mostrecent",
)
SMS_BREAKER_TRIPS = Counter(
    "pn_sms_breaker_trips_total",
    "Automatic pauses of SMS sending by the circuit breaker (carrier refusals or errors "
    "over SMS_BREAKER_* thresholds).",
)
SMS_OPT_OUTS = Counter(
    "pn_sms_opt_outs_total",
    "Customers' SMS choices recorded, by change (opt_out, opt_in) and source "
    "(carrier_21610, inbound_keyword).",
    ["change", "source"],
)
# Created at 0 in every process, so increase() sees a process's first opt-out (an alert
# on a series that starts at 1 would miss it).
for _change, _source in (
    ("opt_out", "carrier_21610"),
    ("opt_out", "inbound_keyword"),
    ("opt_in", "inbound_keyword"),
):
    SMS_OPT_OUTS.labels(_change, _source)
SMS_COST = Counter(
    "pn_sms_cost_total",
    "What the carrier charged for messages (absolute price, counted when a message is "
    "first priced), by price unit.",
    ["price_unit"],
)
