#!/usr/bin/env bash
# Catalog read cost: `show-backup` and `list-backups` on a synthetic catalog of 1,000
# backups and 100,000 archived WAL files (xlog.db), timed as whole commands (release
# build, process start included), median of 21 runs. Results go in docs/benchmarks.md.
#
#   scripts/bench-catalog.sh [BACKUPS] [WALS]
set -euo pipefail
cd "$(dirname "$0")/.."
backups=${1:-1000}
wals=${2:-100000}
cargo build --release -q -p barkeep
bin=target/release/barkeep
work=$(mktemp -d)
trap 'if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi' EXIT
python3 - "$work" "$backups" "$wals" <<'PY'
import os, sys, datetime
work, nb, nw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
srv = os.path.join(work, "home", "pg")
meta = os.path.join(srv, "meta"); wals = os.path.join(srv, "wals")
os.makedirs(meta); os.makedirs(wals); os.makedirs(os.path.join(srv, "base"))
per = max(nw // nb, 1)
t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
def seg(n): return "00000001%08X%08X" % (n // 256, n % 256)
for i in range(nb):
    t = t0 + datetime.timedelta(hours=6 * i)
    bid = t.strftime("%Y%m%dT%H%M%S")
    b, e = i * per + 1, i * per + 2
    lines = {
        "backup_label": "None", "begin_offset": "40", "begin_time": str(t),
        "begin_wal": seg(b), "begin_xlog": "%X/%X" % (b // 256, (b % 256) << 24 | 40),
        "children_backup_ids": "None", "cluster_size": "123456789", "compression": "None",
        "config_file": "/pg/postgresql.conf", "copy_stats": "None", "data_checksums": "on",
        "deduplicated_size": "1000000", "encryption": "None", "end_offset": "256",
        "end_time": str(t + datetime.timedelta(minutes=5)), "end_wal": seg(e),
        "end_xlog": "%X/%X" % (e // 256, (e % 256) << 24 | 256), "error": "None",
        "hba_file": "/pg/pg_hba.conf", "ident_file": "/pg/pg_ident.conf",
        "included_files": "None", "mode": "postgres", "parent_backup_id": "None",
        "pgdata": "/pg", "server_name": "pg", "size": "123456789", "status": "DONE",
        "summarize_wal": "off", "systemid": "7412345678901234567", "tablespaces": "None",
        "timeline": "1", "version": "170004", "xlog_segment_size": "16777216",
    }
    with open(os.path.join(meta, bid + "-backup.info"), "w") as f:
        for k in sorted(lines): f.write("%s=%s\n" % (k, lines[k]))
with open(os.path.join(wals, "pg-xlog.db"), "w") as f:
    for n in range(1, nw + 1):
        f.write("%s\t16777216\t1704067200.0\tNone\tNone\n" % seg(n))
with open(os.path.join(work, "barman.conf"), "w") as f:
    f.write("[barman]\nbarman_home = %s\n\n[pg]\nconninfo = host=/nonexistent\nbackup_method = postgres\n" % os.path.join(work, "home"))
PY
cfg="$work/barman.conf"
mid=$("$bin" -c "$cfg" list-backups --minimal pg | sed -n "$((backups / 2))p")
# Mean wall time of 21 runs, by perf stat when installed (no shell in the measurement),
# else by the shell clock (adds ~1-3 ms of fork/exec per run).
median() {
    if command -v perf > /dev/null; then

        local t
        t=$( { perf stat -r 21 "$@" > /dev/null; } 2>&1 | awk '/seconds time elapsed/ {printf "%d", $1 * 1000000}')
        echo "$t"
        return
    fi
    local runs=() i s e
    for i in $(seq 21); do
        s=$(date +%s%N); "$@" > /dev/null; e=$(date +%s%N)
        runs+=($(( (e - s) / 1000 )))
    done
    printf '%s\n' "${runs[@]}" | sort -n | sed -n 11p
}
echo "catalog: $backups backups, $wals WAL files in xlog.db"
echo "baseline (barkeep --version):         $(median "$bin" --version) µs"
echo "show-backup (a backup in the middle): $(median "$bin" -c "$cfg" show-backup pg "$mid") µs"
echo "show-backup latest:                   $(median "$bin" -c "$cfg" show-backup pg latest) µs"
echo "list-backups:                         $(median "$bin" -c "$cfg" list-backups pg) µs"
echo "list-backups -f json:                 $(median "$bin" -c "$cfg" -f json list-backups pg) µs"
