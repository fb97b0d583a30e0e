# Sourced by the scripts: a virtual environment with the project installed, made or
# refreshed when pyproject.toml or the lock file changed. Needs only python3 (3.11+).
# Dependencies come from requirements-dev.lock (hash-pinned, made by scripts/lock from
# pyproject.toml): pip refuses any file whose hash differs; the project itself is then
# installed without resolving anything (--no-deps).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PREMIUM_NOTIFY_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" "$ROOT/requirements-dev.lock" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing the locked dependencies and the project" >&2
  { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
      -r "$ROOT/requirements-dev.lock" \
    && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -e "$ROOT"; } 2>&1 | grep -v "is ignored" >&2 || true
  "$VENV/bin/python" -c "import app, worker, dramatiq, sqlalchemy" >&2
  rm -f "$VENV"/.installed-* && touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"

# Debian tools the tests use to validate the deploy files: docker-compose (compose file)
# and promtool (package prometheus: metrics and alert rules); and the backup tools the
# backup tests and the recovery drill run: pgbackrest and age. Installed when missing and
# we may (root with apt-get); otherwise the tests that need them fail and say why.
need_debs=()
command -v docker-compose >/dev/null 2>&1 || need_debs+=(docker-compose)
command -v promtool >/dev/null 2>&1 || need_debs+=(prometheus)
command -v pgbackrest >/dev/null 2>&1 || need_debs+=(pgbackrest)
command -v age >/dev/null 2>&1 || need_debs+=(age)
# The live monitoring check (scripts/monitoring-check, tests/observability): Prometheus
# (above), Alertmanager and the exporters compose runs, from Debian.
command -v prometheus-alertmanager >/dev/null 2>&1 || need_debs+=(prometheus-alertmanager)
command -v prometheus-postgres-exporter >/dev/null 2>&1 || need_debs+=(prometheus-postgres-exporter)
command -v prometheus-redis-exporter >/dev/null 2>&1 || need_debs+=(prometheus-redis-exporter)
command -v prometheus-node-exporter >/dev/null 2>&1 || need_debs+=(prometheus-node-exporter)
# Its throwaway CA (PostgreSQL and Redis TLS-only, as compose runs them), and the TLS tests'.
command -v openssl >/dev/null 2>&1 || need_debs+=(openssl)
if [ ${#need_debs[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: installing ${need_debs[*]} (Debian)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_debs[@]}"; } \
    >/dev/null 2>&1 || echo "bootstrap: could not install ${need_debs[*]}" >&2
  # The packages start their services; the project starts its own (on loopback, free
  # ports) only when it needs them.
  for svc in prometheus prometheus-alertmanager prometheus-postgres-exporter \
             prometheus-redis-exporter prometheus-node-exporter; do
    if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
  done
  for program in prometheus prometheus-alertmanager prometheus-postgres-exporter \
                 prometheus-redis-exporter prometheus-node-exporter; do
    pkill -x "${program:0:15}" >/dev/null 2>&1 || true
  done
fi
cd "$ROOT"
