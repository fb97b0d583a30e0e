"""Job freshness and the outbox's pending rows for Prometheus, read from the database at
scrape time (the scheduler's exporter).

Last success, last failure and the last successful run's duration per job come from the
database, not from the process that ran the job: a run started by ``premium-notify run …``
or by any worker counts the same, and nothing is lost when a container is recreated.
``pn_notifications_pending`` [state, age]: outbox rows in Queued or Sending, by age bucket
(``under_5m``, ``5m_to_1h``, ``over_1h``); NotificationsStuckSending watches ``over_1h``.
Served by the scheduler's exporter only (one scraper of the tables). A failing query is
logged and counted (``pn_metrics_refresh_errors_total{source="job_runs"}``); the scrape
still answers, without these series (``absent()`` in the rules then says so).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from app.db.session import SessionScope
from app.observability import metrics
from app.observability.repository import job_freshness, pending_notifications

logger = logging.getLogger(__name__)

# Runs started in this window are looked at: the monthly qualification fits twice.
WINDOW_DAYS = 62

FAMILIES = (
    ("pn_job_last_success_timestamp_seconds", "last_success",
     "Unix time of the last successful finish of each job (from job_runs)."),
    ("pn_job_last_failure_timestamp_seconds", "last_failure",
     "Unix time of the last failed run of each job (from job_runs)."),
    ("pn_job_last_duration_seconds", "last_duration",
     "Duration of the last successful run of each job (from job_runs)."),
    ("pn_job_running", "running", "Runs of each job currently Running (from job_runs)."),
)  # fmt: skip
PENDING = "pn_notifications_pending"
PENDING_HELP = "Outbox rows in Queued or Sending, by state and age bucket (from the database)."
STATES = ("Queued", "Sending")
AGES = ("under_5m", "5m_to_1h", "over_1h")


class JobRunsCollector(Collector):
    """Yields the FAMILIES gauges, one sample per job seen in the window."""

    def __init__(self, scope: SessionScope, window_days: int = WINDOW_DAYS) -> None:
        self._scope = scope
        self._window_days = window_days

    def collect(self) -> Iterable[Metric]:
        try:
            with self._scope() as session:
                rows = job_freshness(session, self._window_days)
                pending = pending_notifications(session)
        except Exception:  # the scrape must still answer
            logger.warning("job_runs freshness query failed", exc_info=True)
            metrics.METRICS_REFRESH_ERRORS.labels(source="job_runs").inc()
            return []
        families = []
        for name, column, documentation in FAMILIES:
            family = GaugeMetricFamily(name, documentation, labels=["pn_job"])
            for row in rows:
                if row[column] is not None:
                    family.add_metric([row["job"]], float(row[column]))
            families.append(family)
        # Every (state, age) pair, 0 when empty: an alert sees the first stuck row.
        counts = {(r["state"], r["age"]): int(r["rows"]) for r in pending}
        gauge = GaugeMetricFamily(PENDING, PENDING_HELP, labels=["state", "age"])
        for state in STATES:
            for age in AGES:
                gauge.add_metric([state, age], float(counts.get((state, age), 0)))
        families.append(gauge)
        return families

    def describe(self) -> Iterator[Metric]:
        return iter(())
