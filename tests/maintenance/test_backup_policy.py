"""The backup policy as configured: pgBackRest's file, compose, the schedule, the metrics."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from app.maintenance import backup_metrics
from app.maintenance.backup_schedule import Rules, last_slot, plan
from app.maintenance.pgbackrest import (
    COMPOSE,
    BackupInfo,
    StanzaInfo,
    archive_settings,
    parse_info,
    render_config,
)
from tests.support.observability import promtool_check_metrics

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
TZ = ZoneInfo("Asia/Jerusalem")
RULES = Rules(at=time(3, 30), tz=TZ, full_weekday="sun", monthly_repo=2, export_weekday="sun")


def _compose() -> dict[str, object]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_the_config_file_is_the_policy_rendered_for_compose() -> None:
    text = (DOCKER / "pgbackrest" / "pgbackrest.conf").read_text()
    assert text == render_config(COMPOSE)
    # The seed's retention: 30 days of dailies, 90 days of weeklies, a year of monthlies.
    for line in ("repo1-retention-full-type=time", "repo1-retention-full=90",
                 "repo1-retention-diff=30", "repo2-retention-full-type=time",
                 "repo2-retention-full=365", "repo1-cipher-type=aes-256-cbc",
                 "repo2-cipher-type=aes-256-cbc"):
        assert line in text.splitlines(), line
    assert "cipher-pass" not in text  # the passphrase is a secret file, never in the config


def test_compose_archives_wal_as_the_policy_says_and_schedules_without_hiding_failures() -> None:
    compose = _compose()
    services = compose["services"]  # type: ignore[index]
    command = services["postgres"]["command"]
    settings = dict(item.split("=", 1) for item in command if "=" in item)
    for key, value in archive_settings(COMPOSE.stanza).items():
        assert settings[key] == value, key
    assert int(settings["archive_timeout"]) <= 60  # RPO under low traffic
    backup = services["backup"]
    assert backup["command"] == ["scripts/backup", "--schedule"]
    assert "|| true" not in (DOCKER / "compose.yaml").read_text()
    env = backup["environment"]
    assert env["BACKUP_STANZA"] == COMPOSE.stanza
    assert env["BACKUP_MONTHLY_REPO"] == str(COMPOSE.monthly_repo)
    assert env["BACKUP_PGBACKREST_CONFIG"] == "/etc/pgbackrest/pgbackrest.conf"
    mounts = {v.split(":")[1]: v for v in backup["volumes"]}
    assert mounts[str(COMPOSE.pg_path)].endswith(":ro")  # reads the data, never writes it
    for path in (COMPOSE.socket_path, *COMPOSE.repo_paths.values()):
        assert str(path) in mounts, path
    assert "user" not in backup  # the image's own non-root user (uid 999, as postgres)


def test_images_carry_the_backup_tools_and_share_the_uid() -> None:
    app = (DOCKER / "Dockerfile").read_text()
    db = (DOCKER / "postgres" / "Dockerfile").read_text()
    assert re.search(r"useradd --system --uid 999 --gid app", app)
    for package in ("pgbackrest", "age", "postgresql-15"):
        assert re.search(rf"\b{package}\b", app), package
    assert "pgbackrest/bookworm" in db and re.search(r"FROM postgres:15(\.\d+)?-bookworm", db)
    assert "slim-bookworm" in app  # the same Debian release: the same pgBackRest
    assert "pip install" not in (ROOT / "scripts" / "backup").read_text()


def _backup(kind: str, stop: datetime, repo: int = 1) -> BackupInfo:
    return BackupInfo(f"{stop:%Y%m%d}", kind, repo, stop - timedelta(minutes=5), stop,
                      1000, 100, False)


def test_weekly_full_daily_differential_and_catch_up_after_an_outage() -> None:
    sunday_slot = datetime(2026, 11, 29, 3, 30, tzinfo=TZ)  # a Sunday
    assert last_slot(sunday_slot + timedelta(hours=5), RULES) == sunday_slot
    # Nothing yet: a full is due, the monthly full and the export too.
    first = plan(sunday_slot + timedelta(minutes=1), [], RULES, None)
    assert (first.daily, first.monthly, first.export) == ("full", True, True)
    done = [
        _backup("full", sunday_slot + timedelta(minutes=20)),
        _backup("full", sunday_slot + timedelta(minutes=40), repo=2),
    ]
    exported = sunday_slot + timedelta(minutes=50)
    assert not plan(sunday_slot + timedelta(hours=12), done, RULES, exported).anything
    monday = plan(sunday_slot + timedelta(days=1, minutes=1), done, RULES, exported)
    assert (monday.daily, monday.monthly, monday.export) == ("diff", False, False)
    # Down from Saturday to Monday noon: Sunday's full was missed; it is taken at once.
    stale = [_backup("full", sunday_slot - timedelta(days=7))]
    late = plan(sunday_slot + timedelta(days=1, hours=9), stale, RULES, None)
    assert late.daily == "full" and late.export
    # A new month: the monthly full into repository 2, once.
    dec = datetime(2026, 12, 1, 3, 31, tzinfo=TZ)
    assert plan(dec, done, RULES, exported).monthly
    assert not plan(dec, [*done, _backup("full", dec, repo=2)], RULES, exported).monthly


def test_slots_exist_on_the_days_the_clocks_change() -> None:
    for day in (datetime(2026, 3, 27, 12, tzinfo=TZ), datetime(2026, 10, 25, 12, tzinfo=TZ)):
        slot = last_slot(day, RULES)
        assert (slot.hour, slot.minute, slot.date()) == (3, 30, day.date())
        assert slot.astimezone(UTC).astimezone(TZ) == slot  # a real, unambiguous moment


def test_metrics_feed_the_backup_alert_and_pass_promtool(tmp_path: Path) -> None:
    raw = [{
        "name": "premium",
        "status": {"code": 0, "message": "ok"},
        "db": [{"version": "15"}],
        "backup": [
            {"label": "F", "type": "full", "database": {"repo-key": 1}, "error": False,
             "timestamp": {"start": 1_700_000_000, "stop": 1_700_000_060},
             "info": {"size": 5000, "repository": {"size": 900}}},
            {"label": "D", "type": "diff", "database": {"repo-key": 1}, "error": False,
             "timestamp": {"start": 1_700_086_400, "stop": 1_700_086_430},
             "info": {"size": 5100, "repository": {"size": 80}}},
            {"label": "M", "type": "full", "database": {"repo-key": 2}, "error": False,
             "timestamp": {"start": 1_700_090_000, "stop": 1_700_090_100},
             "info": {"size": 5100, "repository": {"size": 900}}},
        ],
    }]
    info = parse_info(raw, "premium")
    assert info.pg_major == 15 and [b.repo for b in info.good(1)] == [1, 1]
    now = datetime.fromtimestamp(1_700_090_000, UTC)
    archiver = backup_metrics.Archiver(10, now, 0, None)
    body = backup_metrics.render("premium", info, now, monthly_repo=2, archiver=archiver,
                                 last_failure=1_699_000_000.0)
    promtool_check_metrics(body)
    rule = (DOCKER / "prometheus" / "rules" / "database.yml").read_text()
    used = set(re.findall(r"\bpn_backup_[a-z_]+", rule))
    published = set(re.findall(r"^(pn_backup_[a-z_]+)\{", body, re.M))
    assert used and used <= published, used - published
    # The alert reads the daily repository's newest backup, not the monthly one.
    assert 'pn_backup_last_success_timestamp_seconds{stanza="premium"} 1700086430' in body
    path = tmp_path / "pn_backup.prom"
    backup_metrics.write(path, body)
    assert backup_metrics.previous_failure(path) == 1_699_000_000.0
    empty = backup_metrics.render("premium", StanzaInfo(-1, "missing", ()), now)
    assert "pn_backup_stanza_ok{" in empty and "last_success" not in empty
