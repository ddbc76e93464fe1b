#!/usr/bin/env bash
# The full test suite: installs what is missing (PostgreSQL: Debian's major with apt, and
# 13, 14, 16, 17, 18 into ~/.cache/barkeep-test), then runs every test of the workspace
# against real PostgreSQL clusters; the protocol tests run on every major.
#
#   scripts/test.sh          everything, every major (what CI runs)
#   scripts/test.sh --quick  Debian's major only, nothing downloaded
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--quick" ]; then
    scripts/setup-test-env.sh
else
    scripts/setup-test-env.sh --all-majors
    export BARKEEP_TEST_ALL_MAJORS=1
fi
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
# The engine's example: a backup and a point-in-time restore of a real cluster through
# the library API (fails unless the restored server has exactly the rows at the target).
cargo run --locked -q -p barkeep-engine --example backup_and_restore
