#!/bin/sh
# Hands the repositories' passphrase (a Docker secret file, BACKUP_CIPHER_PASS_FILE) to
# pgBackRest through its own environment variables, then runs the image's entrypoint:
# the server, and so its archive_command, inherit them. Never on a command line.
set -eu
if [ -n "${BACKUP_CIPHER_PASS_FILE:-}" ]; then
  pass="$(cat "$BACKUP_CIPHER_PASS_FILE")"
  PGBACKREST_REPO1_CIPHER_PASS="$pass"
  PGBACKREST_REPO2_CIPHER_PASS="$pass"
  export PGBACKREST_REPO1_CIPHER_PASS PGBACKREST_REPO2_CIPHER_PASS
  unset pass
fi
# The server's TLS key: a Docker secret is world-readable and root's, which PostgreSQL
# refuses for a key; a private copy owned by postgres (0600) is made at every start.
if [ -n "${POSTGRES_TLS_KEY_FILE:-}" ]; then
  install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/tls
  install -o postgres -g postgres -m 0600 "$POSTGRES_TLS_KEY_FILE" /var/lib/postgresql/tls/server.key
fi
exec docker-entrypoint.sh "$@"
