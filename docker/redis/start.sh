#!/bin/sh
# Redis for the broker: TLS only, the default user off, one ACL user per role.
# Compose runs it as the redis image's command (docker/compose.yaml); the TLS test
# (tests/platform/test_security_redis.py) runs the same script against a local redis-server.
# Passwords come from secret files (hex, e.g. openssl rand -hex 32): never in the repository,
# never on a command line. The ACL file is written at start into a private file.
set -eu
secrets="${REDIS_SECRETS_DIR:-/run/secrets}"
acl="${REDIS_ACL_FILE:-/tmp/premium-notify-users.acl}"
password() {
  value="$(tr -d '\r\n' < "$secrets/$1")"
  case "$value" in *[!0-9A-Za-z_-]*|'') echo "start.sh: $1 must be a non-empty hex string" >&2; exit 2;; esac
  printf '%s' "$value"
}
# (The broker passes its namespace "dramatiq" itself as the scripts' key.) Commands every
# application role uses: Lua scripts, lists, hashes, sorted sets (Dramatiq), strings (rate limits), MULTI (dead letters).
# Two commands the scripts call that those categories leave out: TIME (the carrier rate
# limiter's clock, app/ratelimit/sliding_log.lua; only in @fast) and KEYS (Dramatiq's
# dispatch.lua lists a dead worker's unacked sets, in the maintenance any enqueue or fetch
# may run; in @dangerous). Without them every rate-limited send and that maintenance fail.
app="+@read +@write +@scripting +@transaction +@connection -@admin -@dangerous +time +keys"
umask 077
{
  echo "user default off"
  # The healthcheck: PING and nothing else.
  echo "user health on nopass -@all +ping"
  # Workers and operator runs: the broker's keys and the rate limits.
  echo "user worker on >$(password redis_worker_password) resetchannels ~dramatiq ~dramatiq:* ~pn:* -@all $app"
  # The scheduler only enqueues kicks.
  echo "user scheduler on >$(password redis_scheduler_password) resetchannels ~dramatiq ~dramatiq:* -@all $app"
  # redis_exporter: INFO, key sizes, no data and no writes. It names its connection
  # (CLIENT SETNAME, at every scrape) and reads SLOWLOG LEN and LATENCY HISTOGRAM (Redis 7)
  # too: refused, each scrape logs an error, counts a rejected call and loses the series.
  echo "user exporter on >$(password redis_exporter_password) resetchannels ~* -@all +ping +info +client|list +client|setname +config|get +slowlog|get +slowlog|len +latency|latest +latency|histogram +memory|usage +select +scan +type +llen +scard +zcard +hlen +xlen +strlen +pfcount"
} > "$acl"
if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1; then chown redis "$acl"; fi
if command -v docker-entrypoint.sh >/dev/null 2>&1; then
  exec docker-entrypoint.sh redis-server "$@" --aclfile "$acl"  # drops root (the image's way)
fi
exec redis-server "$@" --aclfile "$acl"
