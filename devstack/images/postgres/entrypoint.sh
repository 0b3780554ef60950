#!/bin/sh
# The official image's contract, as far as docker-compose.yaml uses it: POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB (created at the first start), POSTGRES_HOST_AUTH_METHOD, data in $PGDATA, port 5432; UTF8 like
# the official image (a C locale would make SQL_ASCII, which psycopg 3 answers in bytes).
set -eu
user="${POSTGRES_USER:-postgres}"
method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    initdb -D "$PGDATA" -U "$user" --encoding=UTF8 --locale=C.UTF-8 --pwfile="$pwfile" --auth-local=trust --auth-host="$method" >/dev/null
  else
    initdb -D "$PGDATA" -U "$user" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="$method" >/dev/null
  fi
  rm -f "$pwfile"
  echo "host all all all $method" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  db="${POSTGRES_DB:-$user}"
  if [ "$db" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -qc "CREATE DATABASE \"$db\""
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres-entrypoint: initialised $PGDATA (database $db)"
fi
if [ "${1:-postgres}" = postgres ]; then
  [ "$#" -gt 0 ] && shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
