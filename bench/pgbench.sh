#!/usr/bin/env bash
# pgbench against PostgreSQL and a single-node roach, side by side, in one run (issue 15,
# "Benchmarks"). See docs/benchmarks.md.
#
# Starts a throwaway PostgreSQL (initdb in a temporary directory, its own free port on
# 127.0.0.1, unix socket in the temporary directory, default settings: fsync on) and a
# single-node insecure roach (its own temporary store, ports the OS picks on 127.0.0.1).
# Creates the four pgbench tables on both with the same plain SQL, loads them at scale 1
# (100,000 accounts) with INSERT ... VALUES batches, then runs the unmodified built-in
# pgbench scripts with `pgbench -n` against each in turn: select-only (`-S`) with `-M simple`
# and `-M prepared`, and tpcb-like (the default script). Prints each TPS, the roach/PostgreSQL
# ratio and the failed transactions. Both servers are stopped by PID and the temporary
# directory removed on exit, also on failure or Ctrl-C. Nothing but 127.0.0.1 is contacted
# (apt-get aside, when PostgreSQL is missing).
#
# usage: bench/pgbench.sh [-T SECONDS] [-c CLIENTS] [-j THREADS] [--roach PATH] [--keep]
#   -T SECONDS     duration of each pgbench run (default 10)
#   -c CLIENTS     pgbench clients (default 4)
#   -j THREADS     pgbench threads (default 2)
#   --roach PATH   the roach binary (default: built with `cargo build --release -p roach-cli`
#                  into $CARGO_TARGET_DIR or target/)
#   --keep         keep the temporary directory (logs, data) instead of removing it
set -euo pipefail

duration=10
clients=4
threads=2
roach_bin=""
keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
    -T) duration="$2"; shift 2 ;;
    -c) clients="$2"; shift 2 ;;
    -j) threads="$2"; shift 2 ;;
    --roach) roach_bin="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pgbench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for n in "$duration" "$clients" "$threads"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "pgbench.sh: $n is not a positive integer" >&2; exit 2; }
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "[pgbench.sh $(date -u +%H:%M:%S)] $*" >&2; }
die() { say "error: $*"; exit 1; }

# --- PostgreSQL binaries (installed from the distribution when missing) ---------------------

pg_bindir() {
    local d
    # The newest version the distribution installed first.
    while IFS= read -r d; do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]] && { echo "$d"; return 0; }
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    return 1
}

if ! pg_bindir >/dev/null || ! command -v pgbench >/dev/null || ! command -v psql >/dev/null; then
    say "PostgreSQL, psql or pgbench is missing: installing them from the distribution"
    sudo=()
    [[ $EUID -ne 0 ]] && sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        postgresql postgresql-contrib postgresql-client
fi
pgbin="$(pg_bindir)" || die "no initdb/pg_ctl/postgres found after installing PostgreSQL"
pgbench_bin="$pgbin/pgbench"
[[ -x "$pgbench_bin" ]] || pgbench_bin="$(command -v pgbench)"
psql_bin="$pgbin/psql"
[[ -x "$psql_bin" ]] || psql_bin="$(command -v psql)"
# pgbench 15 and later retry serialization and deadlock failures and report them by kind.
max_tries=()
if "$pgbench_bin" --help | grep -q -- '--max-tries'; then
    max_tries=(--max-tries=10 --failures-detailed)
fi

# --- roach binary ---------------------------------------------------------------------------

if [[ -z "$roach_bin" ]]; then
    target="${CARGO_TARGET_DIR:-$repo/target}"
    say "building roach (release) into $target"
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -j2 -p roach-cli)
    roach_bin="$target/release/roach"
fi
[[ -x "$roach_bin" ]] || die "$roach_bin is not an executable"

# --- temporary directory and cleanup --------------------------------------------------------

tmp="$(mktemp -d /tmp/roach-pgbench.XXXXXX)"
pg_pid=""
roach_pid=""

stop_pid() { # stop_pid PID SIGNAL: signal, wait up to 20 s for the process to exit, then SIGKILL
    local pid="$1" sig="$2" i
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -s "$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1 # polling for the exit, with a deadline
    done
    say "pid $pid did not exit on SIG$sig within 20 s: SIGKILL"
    kill -s KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$roach_pid" TERM
    stop_pid "$pg_pid" INT # PostgreSQL's fast shutdown
    wait 2>/dev/null || true
    if [[ $keep -eq 1 || $rc -ne 0 ]]; then
        say "kept $tmp (logs and data)"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PostgreSQL refuses to run as root: run it as the postgres user then.
as_pg=()
if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user to run PostgreSQL as"
    as_pg=(runuser -u postgres --)
    chmod 755 "$tmp"
fi

# --- PostgreSQL -----------------------------------------------------------------------------

pgdata="$tmp/pg"
mkdir -p "$pgdata" "$tmp/pgsock"
[[ $EUID -eq 0 ]] && chown postgres: "$pgdata" "$tmp/pgsock"
say "initdb $pgdata"
"${as_pg[@]}" "$pgbin/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --no-locale \
    >"$tmp/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$tmp/initdb.log")"

port_in_use() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }
pg_port=""
for ((attempt = 0; attempt < 5; attempt++)); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" && continue
    if "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 \
        -o "-p $p -c listen_addresses=127.0.0.1 -k $tmp/pgsock" start >"$tmp/pg_ctl.log" 2>&1; then
        pg_port="$p"
        break
    fi
    say "PostgreSQL did not start on port $p, trying another: $(tail -2 "$pgdata/server.log" 2>/dev/null)"
done
[[ -n "$pg_port" ]] || die "PostgreSQL did not start (see $pgdata/server.log)"
pg_pid="$(head -1 "$pgdata/postmaster.pid")"
say "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') pid $pg_pid on 127.0.0.1:$pg_port"

# --- roach ----------------------------------------------------------------------------------

mkdir -p "$tmp/roach"
say "starting roach start-single-node --insecure (store $tmp/roach/store)"
"$roach_bin" start-single-node --insecure --store "$tmp/roach/store" \
    --listen-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --listening-addr-file "$tmp/roach/listening" >"$tmp/roach/output.log" 2>&1 &
roach_pid=$!
deadline=$((SECONDS + 60))
until grep -q '^http_addr=' "$tmp/roach/listening" 2>/dev/null; do
    kill -0 "$roach_pid" 2>/dev/null || die "roach exited: $(tail -5 "$tmp/roach/output.log")"
    ((SECONDS < deadline)) || die "roach did not listen within 60 s"
    sleep 0.1 # polling the listening file, with a deadline
done
roach_addr="$(sed -n 's/^rpc_addr=//p' "$tmp/roach/listening")"
roach_http="$(sed -n 's/^http_addr=//p' "$tmp/roach/listening")"
roach_port="${roach_addr##*:}"
[[ "${roach_addr%:*}" == 127.0.0.1 ]] || die "roach listens on $roach_addr, not 127.0.0.1"
until curl -fsS "http://$roach_http/health?ready=1" >/dev/null 2>&1; do
    kill -0 "$roach_pid" 2>/dev/null || die "roach exited: $(tail -5 "$tmp/roach/output.log")"
    ((SECONDS < deadline)) || die "roach was not ready within 60 s"
    sleep 0.2 # polling readiness, with a deadline
done
say "roach pid $roach_pid on $roach_addr"

# Connection parameters for psql and pgbench: TCP on 127.0.0.1 for both, no TLS.
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10
pg_conn=(-h 127.0.0.1 -p "$pg_port" -U postgres)
roach_conn=(-h 127.0.0.1 -p "$roach_port" -U root)
pg_db=postgres
roach_db=defaultdb

# --- schema and data: the same plain SQL for both -------------------------------------------

# The columns and types of `pgbench -i`, with the primary keys declared in the table (as
# `pgbench -i -I dtgp` ends up with); the filler is '' as pgbench loads it.
cat >"$tmp/schema.sql" <<'SQL'
CREATE TABLE pgbench_branches (bid INT NOT NULL PRIMARY KEY, bbalance INT, filler CHAR(88));
CREATE TABLE pgbench_tellers (tid INT NOT NULL PRIMARY KEY, bid INT, tbalance INT, filler CHAR(84));
CREATE TABLE pgbench_accounts (aid INT NOT NULL PRIMARY KEY, bid INT, abalance INT, filler CHAR(84));
CREATE TABLE pgbench_history (tid INT, bid INT, aid INT, delta INT, mtime TIMESTAMP, filler CHAR(22));
SQL
scale=1
awk -v scale="$scale" 'BEGIN {
    print "INSERT INTO pgbench_branches (bid, bbalance, filler) VALUES";
    for (b = 1; b <= scale; b++) printf "(%d, 0, %s)%s\n", b, "'\'''\''", (b < scale ? "," : ";");
    n = 10 * scale;
    print "INSERT INTO pgbench_tellers (tid, bid, tbalance, filler) VALUES";
    for (t = 1; t <= n; t++) printf "(%d, %d, 0, %s)%s\n", t, int((t - 1) / 10) + 1, "'\'''\''", (t < n ? "," : ";");
    n = 100000 * scale; batch = 1000;
    for (a = 1; a <= n; a++) {
        if ((a - 1) % batch == 0) print "INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES";
        printf "(%d, %d, 0, %s)%s\n", a, int((a - 1) / 100000) + 1, "'\'''\''", (a % batch == 0 || a == n ? ";" : ",");
    }
}' >"$tmp/data.sql"

sql() { # sql NAME FILE: run FILE against NAME (pg or roach), stopping at the first error
    local conn db
    if [[ $1 == pg ]]; then conn=("${pg_conn[@]}"); db=$pg_db; else conn=("${roach_conn[@]}"); db=$roach_db; fi
    timeout 600 "$psql_bin" "${conn[@]}" -d "$db" -X -q -v ON_ERROR_STOP=1 -f "$2" >"$tmp/$1-$(basename "$2").log" 2>&1
}

for sys in pg roach; do
    say "$sys: creating the pgbench tables"
    sql "$sys" "$tmp/schema.sql" || die "$sys refused the schema: $(grep -m3 -E 'ERROR|FATAL' "$tmp/$sys-schema.sql.log")"
    t0=$SECONDS
    say "$sys: loading scale $scale (100,000 accounts) with INSERT ... VALUES batches of 1,000 rows"
    sql "$sys" "$tmp/data.sql" || die "$sys refused the data: $(grep -m3 -E 'ERROR|FATAL|timeout' "$tmp/$sys-data.sql.log")"
    say "$sys: loaded in $((SECONDS - t0)) s"
done

# --- the runs -------------------------------------------------------------------------------

# run_pgbench SYSTEM NAME ARGS...: runs pgbench, prints "tps failed retried exit_code" ("-"
# for what it did not report) and keeps its output in $tmp/SYSTEM-NAME.out.
run_pgbench() {
    local sys="$1" name="$2" out conn db rc=0
    shift 2
    if [[ $sys == pg ]]; then conn=("${pg_conn[@]}"); db=$pg_db; else conn=("${roach_conn[@]}"); db=$roach_db; fi
    out="$tmp/$sys-$name.out"
    # pgbench ends by itself after -T; the timeout only catches a server that stops answering.
    timeout --kill-after=10 $((duration + 120)) "$pgbench_bin" "${conn[@]}" -n -c "$clients" -j "$threads" \
        -T "$duration" "$@" "$db" >"$out" 2>&1 || rc=$?
    local tps failed retried
    tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out")"
    [[ -n "$tps" ]] && tps="$(awk -v t="$tps" 'BEGIN { printf "%.1f", t }')"
    failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
    retried="$(sed -n 's/^number of transactions retried: \([0-9]*\).*/\1/p' "$out")"
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        say "$sys $name: pgbench did not finish within $((duration + 120)) s (timed out)"
    fi
    if [[ $rc -ne 0 || -z "$tps" ]] || grep -q -E 'aborted|ERROR|FATAL' "$out"; then
        say "$sys $name: pgbench exited with $rc; what the server refused:"
        grep -E 'aborted|ERROR|FATAL|error|could not' "$out" | sort | uniq -c | sort -rn | head -5 >&2 || true
    fi
    echo "${tps:--} ${failed:--} ${retried:-0} $rc"
}

declare -A result
runs=("select-only-simple|-S -M simple" "select-only-prepared|-S -M prepared" "tpcb-like|-M simple ${max_tries[*]}")
for r in "${runs[@]}"; do
    name="${r%%|*}"
    read -r -a args <<<"${r#*|}"
    for sys in pg roach; do
        say "$sys: pgbench -n -c $clients -j $threads -T $duration ${args[*]} ($name)"
        result["$sys-$name"]="$(run_pgbench "$sys" "$name" "${args[@]}")"
    done
done

# --- report ---------------------------------------------------------------------------------

commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=""
[[ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]] && dirty="+dirty"
echo
echo "pgbench $("$pgbench_bin" --version | awk '{print $3}'), PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), roach $commit$dirty, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo "scale $scale, -c $clients -j $threads -T $duration, TCP on 127.0.0.1, no TLS"
printf '%-22s %14s %14s %8s %12s %12s %14s\n' benchmark postgres_tps roach_tps ratio pg_failed roach_failed roach_retried
for r in "${runs[@]}"; do
    name="${r%%|*}"
    read -r pg_tps pg_failed _ _ <<<"${result["pg-$name"]}"
    read -r roach_tps roach_failed roach_retried _ <<<"${result["roach-$name"]}"
    ratio="-"
    if [[ $pg_tps != - && $roach_tps != - ]]; then
        ratio="$(awk -v a="$roach_tps" -v b="$pg_tps" 'BEGIN { if (b > 0) printf "%.3fx", a / b; else print "-" }')"
    fi
    printf '%-22s %14s %14s %8s %12s %12s %14s\n' "$name" "$pg_tps" "$roach_tps" "$ratio" "$pg_failed" "$roach_failed" "$roach_retried"
done
for r in "${runs[@]}"; do
    name="${r%%|*}"
    for sys in pg roach; do
        if [[ "$(cut -d' ' -f2 <<<"${result["$sys-$name"]}")" =~ ^[1-9] ]]; then
            echo "$sys $name, failed transactions by kind: $(sed -n 's/^number of \(.*\) failures: \([0-9]*\).*/\1 \2/p' "$tmp/$sys-$name.out" | paste -sd, - | sed 's/,/, /g')"
        fi
    done
done
echo
for r in "${runs[@]}"; do
    name="${r%%|*}"
    for sys in pg roach; do
        tps="$(cut -d' ' -f1 <<<"${result["$sys-$name"]}")"
        echo "pgbench_${name//-/_}_${sys}_tps: $tps tps"
    done
done
failed_runs=0
for k in "${!result[@]}"; do
    read -r tps _ _ rc <<<"${result[$k]}"
    [[ $tps == - || $rc != 0 ]] && failed_runs=$((failed_runs + 1))
done
if ((failed_runs > 0)); then
    say "$failed_runs run(s) failed (pgbench exited non-zero or reported no TPS): see the errors above and $tmp/*.out"
    keep=1
    exit 1
fi
