#!/usr/bin/env bash
# Installs (if missing) and starts PostgreSQL, and creates the role the tests use.
# Idempotent: safe to run on a machine where all of this is already done.
set -euo pipefail

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "installing PostgreSQL..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

# Memory consolidation commits to a local git repository (the default backend) with the CLI.
if ! command -v git >/dev/null 2>&1; then
  echo "installing git..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq git >/dev/null
fi

# The README tour test runs the README's shell blocks, which use curl and jq.
if ! command -v jq >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  echo "installing jq and curl..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq jq curl >/dev/null
fi

# The dashboard's browser test drives Debian's headless Chromium through chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing chromium and chromium-driver..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

version=$(ls /etc/postgresql | sort -n | tail -n 1)
if ! pg_lsclusters -h | grep -q "^${version} *main .* online"; then
  pg_ctlcluster "${version}" main start
fi

for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done

# The tests create (and drop) one fresh database per test, so the role needs CREATEDB.
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hopper') THEN
    CREATE ROLE hopper LOGIN PASSWORD 'hopper' CREATEDB;
  END IF;
END
$$;
SQL
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname = 'hopper'\"" | grep -q 1 ||
  su postgres -c "createdb -O hopper hopper"
echo "PostgreSQL ${version} ready: postgres://hopper:hopper@127.0.0.1:5432/hopper"
