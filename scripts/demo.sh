#!/usr/bin/env bash
# barkeep's main job on an embedded default: a throwaway local PostgreSQL cluster with data,
# WAL streaming, a backup, more writes, a point-in-time restore, the restored server checked.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-env.sh
cargo run --locked --quiet -p barkeep-demo
