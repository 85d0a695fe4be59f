#!/usr/bin/env bash
# The whole test suite: starts PostgreSQL (installing it if needed), then runs every test
# against both SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-setup.sh
export HOPPER_TEST_DATABASE_URL="${HOPPER_TEST_DATABASE_URL:-postgres://hopper:hopper@127.0.0.1:5432/hopper}"
cargo test --workspace --all-targets "$@"
