#!/usr/bin/env bash
# The full test suite: installs what is missing (PostgreSQL), then runs every test of the
# workspace against real PostgreSQL clusters.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-env.sh "$@"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
