# shellcheck shell=bash
# Shared functions of the developer scripts (`scripts/dev`, `scripts/test`). Source it, do not
# run it. Every function is safe under `set -euo pipefail`.
#
# Layout:
#   <repo>/.local/<stack>/          state of one local stack ("dev", "test"), git-ignored
#       pgdata/                     PostgreSQL cluster (owned by the `postgres` OS user when root)
#       postgres.log                PostgreSQL server log
#       tansu.db, tansu.log         broker storage (SQLite) and log
#       <program>.pid, <program>.log  every background program started by these scripts
#   $RINGIFLOW_CACHE (default ~/.cache/ringiflow), outside the clone so it survives it:
#       tools/bin/tansu             the Kafka-protocol broker (tansu.build: which build it is)
#       target/                     default CARGO_TARGET_DIR

if [[ -n "${RINGIFLOW_LIB_LOADED:-}" ]]; then
    return 0
fi
RINGIFLOW_LIB_LOADED=1

RINGIFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
RINGIFLOW_CACHE="${RINGIFLOW_CACHE:-${HOME:?HOME is not set}/.cache/ringiflow}"
if [[ "$RINGIFLOW_CACHE" != /* ]]; then
    RINGIFLOW_CACHE="$PWD/$RINGIFLOW_CACHE"
fi
RINGIFLOW_LOCAL="$RINGIFLOW_ROOT/.local"
# The broker release these scripts were written against (flags and storage URL semantics), and
# the sha256 of the crates.io archives it is built from (as its own Cargo.lock has them).
readonly RINGIFLOW_TANSU_VERSION=0.6.0
readonly TANSU_CRATES=(
    "tansu 4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d"
    "tansu-storage 720d2ed8e6010c70f7f06e5af5a7274ebbf6e42fdcd9e46de542b10dc4d2f35d"
)
# RingiFlow's patches to tansu-storage (scripts/tansu/*.patch): what makes the local broker
# behave as Apache Kafka does where our latencies depend on it, and spend its CPU on records
# rather than on planning the same SQL again.
TANSU_PATCHES=("$RINGIFLOW_ROOT"/scripts/tansu/*.patch)
TANSU_BIN="$RINGIFLOW_CACHE/tools/bin/tansu"
# Names the release and its patches: a binary of another build is rebuilt.
TANSU_BUILD="$RINGIFLOW_TANSU_VERSION+$(cat -- "${TANSU_PATCHES[@]}" | sha256sum | cut -c1-12)"
# Superuser created by initdb. Trust authentication, and the servers listen on 127.0.0.1
# only: fine on a developer machine or CI runner, not on a shared host.
RINGIFLOW_PG_USER=ringiflow
# File descriptor 9 holds the per-stack lock (see lock_stack); every server started from here
# gets it closed (close_extra_fds) so that a long-running server never keeps the lock.

# ----------------------------------------------------------------------------------------------
# Messages

# `phase MESSAGE`: announce a step. In CI (CI=true) with a wall-clock timestamp and the
# seconds since the script started, so slow steps stand out in the job log.
phase() {
    if [[ "${CI:-}" == "true" ]]; then
        printf '\n==> [%s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$SECONDS" "$*" >&2
    else
        printf '==> %s\n' "$*" >&2
    fi
}

info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# `show_log_tail FILE [LINES]`: print the end of a log file, for error messages.
show_log_tail() {
    local file="$1" lines="${2:-40}"
    if [[ -s "$file" ]]; then
        printf -- '---- last %s lines of %s ----\n' "$lines" "$file" >&2
        tail -n "$lines" -- "$file" >&2 || true
        printf -- '---- end of %s ----\n' "$file" >&2
    else
        printf '(%s is empty or missing)\n' "$file" >&2
    fi
}

# ----------------------------------------------------------------------------------------------
# Paths, locks, processes, ports

# `stack_dir NAME`: print (and create) the state directory of a local stack.
stack_dir() {
    local name="$1"
    [[ "$name" =~ ^[a-z0-9_-]+$ ]] || die "invalid stack name '$name' (use [a-z0-9_-])"
    local dir="$RINGIFLOW_LOCAL/$name"
    mkdir -p -- "$dir"
    # World-traversable even under a strict umask: the PostgreSQL server runs as another user.
    chmod 755 -- "$RINGIFLOW_LOCAL" "$dir" 2>/dev/null || true
    printf '%s\n' "$dir"
}

# `lock_stack NAME wait|nowait`: take the lock of a stack for the rest of this script, so two
# scripts never start or stop the same stack at once. `nowait` fails at once if it is held.
lock_stack() {
    local name="$1" mode="$2" dir
    dir="$(stack_dir "$name")"
    exec 9>"$dir/.lock"
    if [[ "$mode" == "nowait" ]]; then
        flock -n 9 || die "another script is using the '$name' stack (lock $dir/.lock is held)"
    else
        if ! flock -n 9; then
            info "waiting for another script using the '$name' stack..."
            flock -w 900 9 || die "timed out waiting for the lock $dir/.lock"
        fi
    fi
}

# `port_open PORT`: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# `close_extra_fds`: close every file descriptor above 2 in the current (sub)shell, before it
# execs a long-running server: the stack lock, and pipes inherited from whoever ran us (a CI
# runner or `scripts/dev up | tee` would otherwise wait for the server to exit).
close_extra_fds() {
    local fd
    for fd in /proc/self/fd/*; do
        fd="${fd##*/}"
        if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then
            eval "exec $fd>&-" 2>/dev/null || true
        fi
    done
}

# `running_pid PIDFILE`: print the pid recorded in PIDFILE if that process is still alive and
# is the program the file is named after (`<program>.pid`; guards against pid reuse). A stale
# file is removed. Returns 1 when nothing is running.
running_pid() {
    local pidfile="$1" program pid argv0=""
    program="$(basename -- "$pidfile" .pid)"
    [[ -f "$pidfile" ]] || return 1
    pid="$(head -n 1 -- "$pidfile" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/cmdline" ]]; then
        IFS= read -r -d '' argv0 2>/dev/null <"/proc/$pid/cmdline" || true
        if [[ "$(basename -- "${argv0:-/}")" == "$program" ]]; then
            printf '%s\n' "$pid"
            return 0
        fi
    fi
    rm -f -- "$pidfile"
    return 1
}

# `start_background DIR PROGRAM WORKDIR COMMAND [ARGS...]`: start COMMAND detached (own
# session, stdin from /dev/null) with its output in DIR/PROGRAM.log and its pid in
# DIR/PROGRAM.pid. PROGRAM must be the basename of COMMAND (see running_pid). Environment
# variables for the command: put them in front of the call (`VAR=x start_background ...`).
start_background() {
    local dir="$1" program="$2" workdir="$3"
    shift 3
    local log="$dir/$program.log" pidfile="$dir/$program.pid" pid
    [[ "$(basename -- "$1")" == "$program" ]] || die "start_background: '$1' is not '$program'"
    {
        printf '\n===== %s: starting %s =====\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$*"
    } >>"$log"
    # With job control on (an interactive shell that sourced this file) the subshell would
    # lead its own process group and setsid would fork, so $! would not be the program.
    local monitor=0
    if [[ $- == *m* ]]; then
        monitor=1
        set +m
    fi
    (cd -- "$workdir" && close_extra_fds && exec setsid "$@" </dev/null >>"$log" 2>&1) &
    pid=$!
    if ((monitor)); then
        set -m
    fi
    printf '%s\n' "$pid" >"$pidfile"
    # Until the subshell has exec'd the program, /proc/PID/cmdline names bash (or setsid), and
    # running_pid would take the pid file for a stale one: wait for the exec.
    local argv0 tries=0
    while [[ -r "/proc/$pid/cmdline" ]] && ((tries < 100)); do
        argv0=""
        IFS= read -r -d '' argv0 2>/dev/null <"/proc/$pid/cmdline" || true
        [[ "$(basename -- "${argv0:-/}")" == "$program" ]] && break
        sleep 0.05
        tries=$((tries + 1))
    done
}

# `stop_pidfile PIDFILE [TIMEOUT_SECONDS]`: SIGTERM the program, wait for its graceful
# shutdown, SIGKILL it after the timeout. Nothing to do when it is not running.
stop_pidfile() {
    local pidfile="$1" timeout="${2:-30}" program pid waited=0
    program="$(basename -- "$pidfile" .pid)"
    pid="$(running_pid "$pidfile")" || return 0
    info "stopping $program (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= timeout * 5)); then
            warn "$program (pid $pid) did not stop within ${timeout}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    rm -f -- "$pidfile"
}

# `wait_until TIMEOUT_SECONDS DESCRIPTION PIDFILE LOG COMMAND [ARGS...]`: poll COMMAND until it
# succeeds. Fails with the end of LOG when the time is up or when the program of PIDFILE
# (if PIDFILE is not "-") has exited.
wait_until() {
    local timeout="$1" what="$2" pidfile="$3" log="$4"
    shift 4
    local deadline=$((SECONDS + timeout)) program
    until "$@"; do
        if [[ "$pidfile" != "-" ]] && ! running_pid "$pidfile" >/dev/null; then
            show_log_tail "$log"
            program="$(basename -- "$pidfile" .pid)"
            [[ "$program" == "$what" ]] || what="$what ($program)"
            die "$what exited during startup (log: $log)"
        fi
        if ((SECONDS >= deadline)); then
            show_log_tail "$log"
            die "$what: not ready after ${timeout}s (log: $log)"
        fi
        sleep 0.5
    done
}

# `default_target_dir`: export CARGO_TARGET_DIR=$RINGIFLOW_CACHE/target unless already set
# (an absolute path either way), shared by scripts/dev, scripts/test and CI runs.
default_target_dir() {
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$RINGIFLOW_CACHE/target}"
    if [[ "$CARGO_TARGET_DIR" != /* ]]; then
        CARGO_TARGET_DIR="$RINGIFLOW_ROOT/$CARGO_TARGET_DIR"
    fi
    export CARGO_TARGET_DIR
}

# ----------------------------------------------------------------------------------------------
# Tools

# `pg_bindir`: print the bin directory of the newest PostgreSQL server installed from Debian
# packages (or $RINGIFLOW_PG_BINDIR). Returns 1 when there is none.
pg_bindir() {
    if [[ -n "${RINGIFLOW_PG_BINDIR:-}" ]]; then
        [[ -x "$RINGIFLOW_PG_BINDIR/postgres" ]] || return 1
        printf '%s\n' "$RINGIFLOW_PG_BINDIR"
        return 0
    fi
    local dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        if [[ -x "$dir/postgres" && -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/psql" ]]; then
            if [[ -z "$best" ]] || (($(basename "$(dirname "$dir")") > $(basename "$(dirname "$best")"))); then
                best="$dir"
            fi
        fi
    done
    [[ -n "$best" ]] || return 1
    printf '%s\n' "$best"
}

# `as_root COMMAND...`: run as root (directly, or through sudo when available).
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (install sudo or run as root)"
    fi
}

# `ensure_tools`: install what building, testing and running the stack needs, only when it is
# missing: Debian packages (PostgreSQL, and the C toolchain + zlib headers that rdkafka-sys
# uses to build librdkafka), cargo-nextest, and the Tansu broker.
ensure_tools() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install a Rust toolchain (https://rustup.rs) and put ~/.cargo/bin on PATH"
    command -v apt-get >/dev/null 2>&1 || [[ -n "$(pg_bindir || true)" ]] ||
        die "no apt-get: install PostgreSQL 15+, gcc, g++, make, pkg-config, zlib and OpenSSL headers and curl yourself"

    local missing=()
    pg_bindir >/dev/null || missing+=(postgresql)
    command -v gcc >/dev/null 2>&1 || missing+=(gcc)
    command -v g++ >/dev/null 2>&1 || missing+=(g++)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    [[ -e /usr/include/zlib.h ]] || missing+=(zlib1g-dev)
    # librdkafka is built with TLS (and SCRAM) against the system OpenSSL.
    [[ -e /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
    command -v patch >/dev/null 2>&1 || missing+=(patch)
    if ((${#missing[@]} > 0)); then
        phase "Installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
        pg_bindir >/dev/null || die "PostgreSQL server binaries still missing after installing postgresql"
    fi

    if ! cargo nextest --version >/dev/null 2>&1; then
        phase "Installing cargo-nextest"
        env -u CARGO_TARGET_DIR cargo install cargo-nextest --locked
    fi

    if ! tansu_built; then
        mkdir -p -- "$RINGIFLOW_CACHE/tools"
        # Several scripts (dev and test) may get here at once: build it only once.
        (
            exec 8>"$RINGIFLOW_CACHE/tools/.install.lock"
            flock -w 3600 8 || die "timed out waiting for another Tansu installation"
            tansu_built || install_tansu
        )
        tansu_built || die "Tansu installation failed: $TANSU_BIN missing"
    fi
}

# `tansu_built`: true when $TANSU_BIN is this build (release and patches).
tansu_built() {
    [[ -x "$TANSU_BIN" && "$(cat -- "$TANSU_BIN.build" 2>/dev/null)" == "$TANSU_BUILD" ]]
}

# `install_tansu`: build Tansu $RINGIFLOW_TANSU_VERSION from its crates.io archives (checked
# against their sha256) with the patches applied to tansu-storage, into $RINGIFLOW_CACHE/tools,
# with the versions of every other dependency its own lock file names.
install_tansu() {
    local src="$RINGIFLOW_CACHE/tools/src" entry name sha archive patch
    phase "Building the Tansu broker $TANSU_BUILD into $RINGIFLOW_CACHE/tools (one-time build, about 20 minutes)"
    rm -rf -- "$src"
    mkdir -p -- "$src"
    for entry in "${TANSU_CRATES[@]}"; do
        read -r name sha <<<"$entry"
        archive="$src/$name-$RINGIFLOW_TANSU_VERSION.crate"
        curl -sSfL --retry 3 -o "$archive" \
            "https://static.crates.io/crates/$name/$name-$RINGIFLOW_TANSU_VERSION.crate" ||
            die "cannot download the $name crate"
        printf '%s  %s\n' "$sha" "$archive" | sha256sum --check --quiet ||
            die "$name-$RINGIFLOW_TANSU_VERSION.crate does not match its sha256"
        tar -xzf "$archive" -C "$src"
    done
    local crate="$src/tansu-$RINGIFLOW_TANSU_VERSION" storage="tansu-storage-$RINGIFLOW_TANSU_VERSION"
    for patch in "${TANSU_PATCHES[@]}"; do
        patch --quiet --forward -p1 -d "$src/$storage" <"$patch" || die "cannot apply $patch"
    done
    printf '\n[patch.crates-io]\ntansu-storage = { path = "../%s" }\n' "$storage" >>"$crate/Cargo.toml"
    # A path dependency is locked without a source or checksum; every other entry stays.
    sed -i '/^name = "tansu-storage"$/,/^dependencies = /{/^source = /d;/^checksum = /d}' \
        "$crate/Cargo.lock"
    env -u CARGO_TARGET_DIR CARGO_TARGET_DIR="$src/target" cargo install --path "$crate" \
        --locked --force --features libsql --root "$RINGIFLOW_CACHE/tools" ||
        die "building Tansu failed (see above)"
    printf '%s\n' "$TANSU_BUILD" >"$TANSU_BIN.build"
    rm -rf -- "$src"
}

# ----------------------------------------------------------------------------------------------
# PostgreSQL

# Run a command as the owner of the PostgreSQL cluster: the `postgres` OS user when we are
# root (the server refuses to run as root), ourselves otherwise. Runs from / so that the
# server user never lacks access to the current directory. `pg_ctl start` leaves the server
# running, so inherited descriptors are closed (close_extra_fds).
as_pg_owner() {
    if ((EUID == 0)); then
        (cd / && close_extra_fds && exec runuser -u postgres -- "$@")
    else
        (cd / && close_extra_fds && exec "$@")
    fi
}

# The root user prepares files and directories for the cluster owner.
pg_own() {
    if ((EUID == 0)); then
        chown -R postgres:postgres -- "$@"
    fi
}

ensure_postgres_os_user() {
    ((EUID == 0)) || return 0
    if ! id -u postgres >/dev/null 2>&1; then
        info "creating the 'postgres' OS user"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

# `pg_socket_dir NAME PORT`: the unix-socket directory of a stack's server: inside the stack
# directory when the path is short enough for a socket (107 bytes), else under /tmp.
pg_socket_dir() {
    local name="$1" port="$2" dir
    dir="$(stack_dir "$name")/run"
    if ((${#dir} + ${#port} + 12 > 100)); then
        dir="/tmp/ringiflow-$name-$port"
    fi
    printf '%s\n' "$dir"
}

# `pg_tool PORT PROGRAM ARGS...`: run a PostgreSQL client program against 127.0.0.1:PORT as
# the ringiflow superuser.
pg_tool() {
    local port="$1" program="$2" bindir
    shift 2
    bindir="$(pg_bindir)" || die "PostgreSQL is not installed (run ensure_tools)"
    PGCONNECT_TIMEOUT=5 "$bindir/$program" -h 127.0.0.1 -p "$port" -U "$RINGIFLOW_PG_USER" "$@"
}

pg_ready() {
    local bindir
    bindir="$(pg_bindir)" || return 1
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$1" -U "$RINGIFLOW_PG_USER" -d postgres -t 2
}

# `pg_running NAME`: true when the cluster of the stack has a live server.
pg_running() {
    local pgdata bindir
    pgdata="$(stack_dir "$1")/pgdata"
    [[ -f "$pgdata/PG_VERSION" ]] || return 1
    bindir="$(pg_bindir)" || return 1
    as_pg_owner "$bindir/pg_ctl" status -D "$pgdata" >/dev/null 2>&1
}

# `start_postgres NAME PORT [durable|throwaway]`: run the stack's own PostgreSQL on
# 127.0.0.1:PORT (initialised once, superuser `ringiflow`, trust authentication) and wait until
# it accepts connections. Does nothing when it already runs. `throwaway` trades crash safety for
# speed: only for data that can be recreated at will (the test server).
start_postgres() {
    local name="$1" port="$2" durability="${3:-durable}"
    local dir bindir pgdata log sockdir
    dir="$(stack_dir "$name")"
    pgdata="$dir/pgdata"
    log="$dir/postgres.log"
    bindir="$(pg_bindir)" || die "PostgreSQL is not installed (run ensure_tools)"

    if pg_running "$name"; then
        wait_until 60 "PostgreSQL '$name'" - "$log" pg_ready "$port"
        info "PostgreSQL '$name' already running on 127.0.0.1:$port"
        return 0
    fi
    if port_open "$port"; then
        die "port $port is already in use by another program; PostgreSQL '$name' cannot start (stop it, or check 'ss -ltnp')"
    fi

    ensure_postgres_os_user
    sockdir="$(pg_socket_dir "$name" "$port")"
    mkdir -p -- "$pgdata" "$sockdir"
    touch -- "$log"
    pg_own "$pgdata" "$sockdir" "$log"
    chmod 700 -- "$pgdata"
    if ! as_pg_owner test -w "$pgdata"; then
        die "the postgres OS user cannot reach $pgdata; every parent directory of the clone must be world-executable (chmod o+x)"
    fi

    if [[ ! -f "$pgdata/PG_VERSION" ]]; then
        phase "Initialising PostgreSQL cluster '$name' in $pgdata"
        local locale=C
        if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
            locale=C.UTF-8
        fi
        as_pg_owner "$bindir/initdb" -D "$pgdata" -U "$RINGIFLOW_PG_USER" --auth=trust \
            --encoding=UTF8 --locale="$locale" --no-sync >>"$log" 2>&1 ||
            {
                show_log_tail "$log"
                die "initdb of PostgreSQL '$name' failed"
            }
        printf "\ninclude_if_exists = 'ringiflow.conf'\n" >>"$pgdata/postgresql.conf"
    fi

    # Written at every start so that edits here reach existing clusters.
    {
        printf '# Written by scripts/lib.sh (start_postgres) at every start; edits are lost.\n'
        printf "listen_addresses = '127.0.0.1'\n"
        printf 'port = %s\n' "$port"
        printf "unix_socket_directories = '%s'\n" "$sockdir"
        printf 'max_connections = 300\n'
        printf 'shared_buffers = 128MB\n'
        printf "log_line_prefix = '%%m [%%p] %%q%%u@%%d '\n"
        printf "log_timezone = 'UTC'\n"
        printf "timezone = 'UTC'\n"
        # The bench measures the relay's lag from each append's commit (pg_xact_commit_timestamp).
        printf 'track_commit_timestamp = on\n'
        if [[ "$durability" == "throwaway" ]]; then
            # Test server: every test creates its own database and nothing here has to survive
            # a crash, so skip the disk flushes that make CREATE DATABASE and each commit slow.
            # fsync=off can corrupt the cluster if the machine (not just the server) crashes;
            # then delete .local/<name>/pgdata and it is recreated. Never use this for dev data.
            printf 'fsync = off\n'
            printf 'synchronous_commit = off\n'
            printf 'full_page_writes = off\n'
            printf 'max_wal_size = 2GB\n'
            printf 'checkpoint_timeout = 30min\n'
        fi
    } >"$pgdata/ringiflow.conf"
    pg_own "$pgdata/ringiflow.conf"

    phase "Starting PostgreSQL '$name' on 127.0.0.1:$port"
    if ! as_pg_owner "$bindir/pg_ctl" start -D "$pgdata" -l "$log" -w -t 60 >/dev/null; then
        show_log_tail "$log"
        die "PostgreSQL '$name' did not start (log: $log)"
    fi
    wait_until 60 "PostgreSQL '$name'" - "$log" pg_ready "$port"
}

stop_postgres() {
    local name="$1" dir bindir
    dir="$(stack_dir "$name")"
    pg_running "$name" || return 0
    bindir="$(pg_bindir)"
    info "stopping PostgreSQL '$name'"
    as_pg_owner "$bindir/pg_ctl" stop -D "$dir/pgdata" -m fast -w -t 60 >/dev/null ||
        die "PostgreSQL '$name' did not stop (log: $dir/postgres.log)"
}

# `ensure_database PORT NAME`: create database NAME unless it exists.
ensure_database() {
    local port="$1" db="$2" exists
    exists="$(pg_tool "$port" psql -d postgres -XAtq -v ON_ERROR_STOP=1 \
        -v "db=$db" <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")" ||
        die "cannot query PostgreSQL on 127.0.0.1:$port"
    if [[ "$exists" != "1" ]]; then
        info "creating database $db"
        pg_tool "$port" createdb -- "$db"
    fi
}

# ----------------------------------------------------------------------------------------------
# Kafka-protocol broker (Tansu)

# `start_broker NAME PORT`: run Tansu on 127.0.0.1:PORT (advertised as such) with durable
# SQLite storage in the stack directory, and wait until it accepts connections. Does nothing
# when it already runs.
start_broker() {
    local name="$1" port="$2" dir pidfile pid
    dir="$(stack_dir "$name")"
    pidfile="$dir/tansu.pid"
    [[ -x "$TANSU_BIN" ]] || die "Tansu not found at $TANSU_BIN (run ensure_tools)"

    if pid="$(running_pid "$pidfile")"; then
        wait_until 60 "broker '$name'" "$pidfile" "$dir/tansu.log" port_open "$port"
        info "broker '$name' already running on 127.0.0.1:$port (pid $pid)"
        return 0
    fi
    if port_open "$port"; then
        die "port $port is already in use by another program; broker '$name' cannot start (check 'ss -ltnp')"
    fi

    phase "Starting the Tansu broker '$name' on 127.0.0.1:$port"
    # Tansu resolves a sqlite:// URL against its working directory (and reads a .env file
    # there), so it runs inside the stack directory with the database file named relatively.
    RUST_LOG="${RINGIFLOW_TANSU_LOG:-warn}" start_background "$dir" tansu "$dir" "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "sqlite://tansu.db"
    wait_until 60 "broker '$name'" "$pidfile" "$dir/tansu.log" port_open "$port"
    index_broker_headers "$dir/tansu.db" "$pidfile" "$dir/tansu.log"
}

# The index Tansu's SQLite schema lacks: without it every consumed record scans every stored
# header (each event carries about 15), so fetches slow down as the log grows until they outlive
# the client's request timeout. Tansu creates its tables with CREATE TABLE IF NOT EXISTS, so an
# index added after its first start survives restarts.
readonly TANSU_HEADER_INDEX=header_topition_offset_id

# `tansu_header_index_exists DB`: true when the broker database has the index.
tansu_header_index_exists() {
    [[ "$(sqlite3 -cmd '.timeout 5000' "$1"         "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '$TANSU_HEADER_INDEX'" 2>/dev/null)" == 1 ]]
}

tansu_schema_ready() {
    [[ "$(sqlite3 -cmd '.timeout 5000' "$1"         "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'header'" 2>/dev/null)" == 1 ]]
}

# `index_broker_headers DB PIDFILE LOG`: waits for Tansu to create its schema in DB, adds the
# header index, and fails unless it is there afterwards.
index_broker_headers() {
    local db="$1" pidfile="$2" log="$3"
    tansu_header_index_exists "$db" && return 0
    wait_until 60 "broker schema in $db" "$pidfile" "$log" tansu_schema_ready "$db"
    sqlite3 -cmd '.timeout 10000' "$db" \
        "CREATE INDEX IF NOT EXISTS $TANSU_HEADER_INDEX ON header (topition, offset_id)" ||
        die "cannot index the broker's headers in $db"
    tansu_header_index_exists "$db" || die "the header index is missing from $db after creating it"
    info "broker header index present in $db"
}

# `create_topic BROKER_PORT NAME PARTITIONS`: create a topic unless it exists.
create_topic() {
    local port="$1" topic="$2" partitions="$3" out
    [[ -x "$TANSU_BIN" ]] || die "Tansu not found at $TANSU_BIN (run ensure_tools)"
    # `topic list` prints the broker's metadata as JSON: [{"error_code":0,"name":"…",…},…].
    # Looking first keeps the broker log free of TopicAlreadyExists errors.
    if ! out="$(cd / && "$TANSU_BIN" topic list --broker "tcp://127.0.0.1:$port" 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "cannot list the topics of the broker on 127.0.0.1:$port"
    fi
    if grep -qF "\"name\":\"$topic\"" <<<"$out"; then
        info "topic $topic already exists"
        return 0
    fi
    if out="$(cd / && "$TANSU_BIN" topic create --broker "tcp://127.0.0.1:$port" \
        --partitions "$partitions" "$topic" 2>&1)"; then
        info "created topic $topic ($partitions partitions)"
    elif grep -qiE 'TopicAlreadyExists|already exists' <<<"$out"; then
        info "topic $topic already exists"
    else
        printf '%s\n' "$out" >&2
        die "cannot create topic $topic on 127.0.0.1:$port"
    fi
}

# ----------------------------------------------------------------------------------------------

# `stop_stack NAME`: stop everything started for a stack: the programs with pid files
# (services first, in parallel, then the broker), then PostgreSQL.
stop_stack() {
    local name="$1" dir pidfile job jobs=()
    dir="$(stack_dir "$name")"
    for pidfile in "$dir"/*.pid; do
        [[ -e "$pidfile" && "$(basename -- "$pidfile")" != tansu.pid ]] || continue
        stop_pidfile "$pidfile" &
        jobs+=("$!")
    done
    for job in "${jobs[@]}"; do
        wait "$job" || true
    done
    stop_pidfile "$dir/tansu.pid"
    stop_postgres "$name"
}
