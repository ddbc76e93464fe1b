#!/usr/bin/env bash
# Side-by-side base backup benchmark: pg_basebackup -Fp -Xnone versus barkeep backup
# (plain, and tar + zstd on this side), on the same pgbench database. Reports wall time
# and peak memory (GNU time's maximum RSS). Results go in docs/benchmarks.md.
#
#   scripts/bench-backup.sh [SCALE]      (pgbench scale, default 50 ≈ 750 MB)
#
# Runs as root (PostgreSQL itself runs as `postgres`); needs Debian's PostgreSQL and GNU
# time (apt-get install time).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-50}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release -q -p barkeep
barkeep=$PWD/target/release/barkeep
work=$(mktemp -d /tmp/bkbench.XXXXXX)
chmod 755 "$work"
chown postgres "$work"
trap 'runuser -u postgres -- "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
port=$(( 20000 + RANDOM % 20000 ))
mkdir "$work/sock" && chown postgres "$work/sock"
runuser -u postgres -- "$bin/initdb" -D "$work/data" -A trust >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work/sock'
wal_level = replica
max_wal_senders = 10
fsync = on
max_wal_size = 4GB
CONF
runuser -u postgres -- "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w start >/dev/null
runuser -u postgres -- "$bin/pgbench" -h "$work/sock" -p "$port" -i -q -s "$scale" postgres >/dev/null 2>&1
runuser -u postgres -- "$bin/psql" -h "$work/sock" -p "$port" -qAt -c "VACUUM FREEZE" -c "CHECKPOINT" postgres
size=$(runuser -u postgres -- "$bin/psql" -h "$work/sock" -p "$port" -qAt -c "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database" postgres)

conf() {
    cat >"$work/$1.conf" <<CONF
[barman]
barman_home = $work/home-$1
[pg]
conninfo = host=$work/sock port=$port user=postgres dbname=postgres
backup_method = postgres
immediate_checkpoint = true
reuse_backup = off
$2
CONF
}
conf plain ""
conf zstd "backup_compression = zstd
backup_compression_level = 3"

measure() { # name, command…
    local name=$1; shift
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
    read -r secs kb <"$work/time"
    printf '| %s | %s s | %s MiB |\n' "$name" "$secs" "$((kb / 1024))"
}

echo "pgbench scale $scale ($size), PostgreSQL $($bin/postgres --version | awk '{print $3}'), $(nproc) cores"
echo
echo "| command | time | peak RSS |"
echo "| --- | ---: | ---: |"
measure "pg_basebackup -Fp -Xnone -c fast" "$bin/pg_basebackup" -h "$work/sock" -p "$port" -U postgres -Fp -Xnone -c fast -D "$work/pgbb"
measure "barkeep backup (plain)" "$barkeep" -c "$work/plain.conf" backup pg
measure "pg_basebackup -Ft -Xnone --compress=client-zstd:3" "$bin/pg_basebackup" -h "$work/sock" -p "$port" -U postgres -Ft -Xnone -c fast --compress=client-zstd:3 -D "$work/pgbbz"
measure "barkeep backup (tar, zstd 3, all cores)" "$barkeep" -c "$work/zstd.conf" backup pg
