#!/usr/bin/env bash
# The fault campaign on demand (docs/testing.md): the real barkeep binary against real
# PostgreSQL under load, through random SIGKILLs, PostgreSQL crashes, cut and stalled
# connections, a full disk and bad input, then the checks of WAL, backups and restore.
#
#   scripts/fault-campaign.sh                    200 trials, a new seed
#   scripts/fault-campaign.sh --trials 50 --seed 42
#
# CI runs a short campaign as part of scripts/test.sh (BARKEEP_FAULT_TRIALS, default 16,
# within BARKEEP_FAULT_BUDGET_SECS, default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=200
seed=""
while [ $# -gt 0 ]; do
    case "$1" in
        --trials) trials="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) echo "usage: $0 [--trials N] [--seed S]" >&2; exit 2 ;;
    esac
done
scripts/setup-test-env.sh
export BARKEEP_TEST_REQUIRE_PG=1
export BARKEEP_FAULT_TRIALS="$trials"
# About 10 s a trial on 2 cores, plus set-up and the final restore.
export BARKEEP_FAULT_BUDGET_SECS=$((trials * 20 + 60))
[ -n "$seed" ] && export BARKEEP_FAULT_SEED="$seed"
exec cargo test --locked -p barkeep --test fault_campaign -- --nocapture
