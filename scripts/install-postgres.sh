#!/usr/bin/env bash
# Installs Debian's postgresql package for the tests that need a real PostgreSQL server (tests/helpers/postgres_server.py),
# unless its server binaries are already there. Never fails: without root or apt those tests are skipped instead.
set -uo pipefail

if command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; then
    exit 0
fi
echo "install-postgres: could not install Debian's postgresql package (needs root and apt-get); the PostgreSQL tests will be skipped."
