#!/usr/bin/env bash
# Make sure what the test suite talks to is there: Chromium for the browser
# tests, libfaketime for the run 13 months ahead, Pango and poppler for the
# report PDFs, PostgreSQL and Redis on
# 127.0.0.1. Installs with apt-get when run as root and something is missing;
# fails (never skips) when a service stays down.
# `--bench` (make bench) also wants wrk, the load tool of bench/public.py.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
    echo "Installing $* with apt-get ..." >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v pg_isready >/dev/null || missing+=(postgresql postgresql-contrib)
command -v redis-cli >/dev/null || missing+=(redis-server)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v faketime >/dev/null || missing+=(faketime)
# WeasyPrint renders report PDFs with Pango; the tests read them with pdftotext.
ldconfig -p | grep -q 'libpangoft2-1.0.so' || missing+=(libpango-1.0-0 libpangoft2-1.0-0)
command -v pdftotext >/dev/null || missing+=(poppler-utils)
if [ "${1:-}" = --bench ]; then command -v wrk >/dev/null || missing+=(wrk); fi
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}" || { echo "Please install: ${missing[*]}" >&2; exit 1; }
fi

if [ -z "${DATABASE_URL:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -n 1)
    [ -n "$version" ] && as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if [ -z "${DATABASE_URL:-}" ]; then
    pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432." >&2; exit 1; }
    # A fresh Debian cluster asks for a password over TCP: give postgres one.
    if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -Atc "select 1" >/dev/null 2>&1; then
        as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    fi
fi
if [ -z "${REDIS_URL:-}" ] && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
if [ -z "${REDIS_URL:-}" ]; then
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { echo "Redis is not reachable on 127.0.0.1:6379." >&2; exit 1; }
fi
