#!/usr/bin/env bash
# barkeep's main job on an embedded default: a throwaway local PostgreSQL cluster, a
# Barman-style configuration for it, and barkeep's commands run against it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-env.sh
cargo run --locked --quiet -p barkeep-demo
