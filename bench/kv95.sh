#!/usr/bin/env bash
# kv95 before and after, in one run (issue 15, "Benchmarks"). See docs/benchmarks.md.
#
# Builds `roach` at BASE_REV (default HEAD~1; exported with `git archive` into a temporary
# directory, so no git state changes) and at the working tree, then, alternating base and
# head for --rounds rounds, starts a fresh 3-node insecure cluster of each (temporary stores,
# ports the OS picks on 127.0.0.1), runs `roach workload init kv` and
# `roach workload run kv --read-percent 95` against node 1 for --ramp (a warm-up whose figures
# are discarded, like the --ramp of CockroachDB's roachtests) and then --duration, and stops the
# cluster by PID. Prints ops/s and p99 of every run, the means, and the head/base ratios.
# The binaries are cached by commit under <target>/kv95-bin, so a second run builds nothing;
# the base commit builds in <target>/kv95-base-target (a second source tree must not share
# artifacts with the working tree's). BASE_REV=HEAD on a clean tree builds once and measures
# the run-to-run noise.
#
# usage: bench/kv95.sh [BASE_REV] [--duration 30s] [--ramp 5s] [--rounds 2] [--concurrency 8]
#                      [--rows 10000] [--dev] [--keep]
#   BASE_REV         the commit to compare against (default HEAD~1)
#   --duration D     length of each measured workload run (default 30s)
#   --ramp D         warm-up before each measured run, not counted (default 5s; 0s for none)
#   --rounds N       base/head pairs to run, alternating (default 2)
#   --concurrency N  workload connections (default 8)
#   --rows N         keys loaded by init and used by run (--insert-count, --cycle-length;
#                    default 10000, so that reads find their key)
#   --dev            debug builds instead of release (a quick check of the script only)
#   --keep           keep the temporary directory (stores, logs)
set -euo pipefail

base_rev="HEAD~1"
duration=30s
ramp=5s
rounds=2
concurrency=8
rows=10000
profile=release
keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --ramp) ramp="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --dev) profile=dev; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "kv95.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
    *) base_rev="$1"; shift ;;
    esac
done
for n in "$rounds" "$concurrency" "$rows"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "kv95.sh: $n is not a positive integer" >&2; exit 2; }
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "[kv95.sh $(date -u +%H:%M:%S)] $*" >&2; }
die() { say "error: $*"; exit 1; }

base_sha="$(git -C "$repo" rev-parse --verify "$base_rev^{commit}")" || die "unknown revision $base_rev"
head_sha="$(git -C "$repo" rev-parse HEAD)"
dirty=""
[[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]] && dirty="+dirty"
target="${CARGO_TARGET_DIR:-$repo/target}"
out_dir=release
[[ $profile == dev ]] && out_dir=debug
cache="$target/kv95-bin"
mkdir -p "$cache"

tmp="$(mktemp -d /tmp/roach-kv95.XXXXXX)"
pids=()

stop_pid() { # stop_pid PID: SIGTERM, wait up to 20 s for the exit, then SIGKILL
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -s TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1 # polling for the exit, with a deadline
    done
    say "pid $pid did not exit on SIGTERM within 20 s: SIGKILL"
    kill -s KILL "$pid" 2>/dev/null || true
}

stop_cluster() {
    local pid
    for pid in "${pids[@]}"; do
        stop_pid "$pid"
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_cluster
    if [[ $keep -eq 1 || $rc -ne 0 ]]; then
        say "kept $tmp (stores and logs)"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the two binaries -----------------------------------------------------------------------

# build SRC_DIR TARGET_DIR: builds roach-cli in SRC_DIR into TARGET_DIR. The base commit gets
# a target directory of its own: cargo identifies a workspace's path crates by their path
# relative to the workspace, so two source trees sharing one target directory share artifacts,
# and a build script whose inputs are older than the other tree's outputs (the .proto files)
# would not rerun.
build() {
    local args=(build -j2 -p roach-cli)
    [[ $profile == release ]] && args+=(--release)
    (cd "$1" && CARGO_TARGET_DIR="$2" cargo "${args[@]}")
}

base_bin="$cache/roach-$profile-${base_sha:0:12}"
if [[ ! -x "$base_bin" ]]; then
    say "building roach at $base_rev (${base_sha:0:12}), $profile"
    src="$repo"
    base_target="$target"
    if [[ $base_sha != "$head_sha" || -n "$dirty" ]]; then
        # Another commit (or HEAD under local changes): its own source tree and target.
        src="$tmp/base-src"
        base_target="$target/kv95-base-target"
        mkdir -p "$src"
        git -C "$repo" archive "$base_sha" | tar -x -C "$src"
    fi
    build "$src" "$base_target"
    cp "$base_target/$out_dir/roach" "$base_bin.partial"
    mv "$base_bin.partial" "$base_bin"
fi
if [[ -z "$dirty" && -x "$cache/roach-$profile-${head_sha:0:12}" ]]; then
    head_bin="$cache/roach-$profile-${head_sha:0:12}"
else
    say "building roach at the working tree (${head_sha:0:12}$dirty), $profile"
    build "$repo" "$target"
    head_bin="$tmp/roach-head"
    cp "$target/$out_dir/roach" "$head_bin"
    if [[ -z "$dirty" ]]; then
        cp "$head_bin" "$cache/roach-$profile-${head_sha:0:12}.partial"
        mv "$cache/roach-$profile-${head_sha:0:12}.partial" "$cache/roach-$profile-${head_sha:0:12}"
    fi
fi

# --- one cluster, one run -------------------------------------------------------------------

# wait_file FILE PID: polls until FILE has an http_addr= line, or PID exits, or 60 s pass.
wait_file() {
    local deadline=$((SECONDS + 60))
    until grep -q '^http_addr=' "$1" 2>/dev/null; do
        kill -0 "$2" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.1 # polling the listening file, with a deadline
    done
}

# run_once LABEL BIN: a fresh 3-node cluster of BIN, init, the kv95 run; sets run_ops and
# run_p99. (Not in a subshell: the node PIDs must reach the cleanup.)
run_once() {
    local label="$1" bin="$2" dir="$tmp/$1" i join=() addr=() http=() deadline
    mkdir -p "$dir"
    for i in 1 2 3; do
        "$bin" start --insecure --store "$dir/n$i" --listen-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
            --listening-addr-file "$dir/n$i.listening" "${join[@]}" >"$dir/n$i.out" 2>&1 &
        pids+=($!)
        wait_file "$dir/n$i.listening" "${pids[-1]}" || die "$label: node $i did not start: $(tail -3 "$dir/n$i.out")"
        addr[i]="$(sed -n 's/^rpc_addr=//p' "$dir/n$i.listening")"
        http[i]="$(sed -n 's/^http_addr=//p' "$dir/n$i.listening")"
        [[ "${addr[i]%:*}" == 127.0.0.1 ]] || die "$label: node $i listens on ${addr[i]}, not 127.0.0.1"
        join=(--join "${addr[1]}")
    done
    "$bin" init --insecure --host "${addr[1]}" >"$dir/init.out" 2>&1 || die "$label: roach init: $(cat "$dir/init.out")"
    deadline=$((SECONDS + 120))
    for i in 1 2 3; do
        until curl -fsS "http://${http[i]}/health?ready=1" >/dev/null 2>&1; do
            ((SECONDS < deadline)) || die "$label: node $i not ready within 120 s"
            sleep 0.2 # polling readiness, with a deadline
        done
    done
    local url="postgresql://root@${addr[1]}/defaultdb?sslmode=disable"
    timeout 600 "$bin" workload init kv --insert-count "$rows" --cycle-length "$rows" "$url" \
        >"$dir/workload-init.out" 2>&1 || die "$label: workload init kv: $(tail -3 "$dir/workload-init.out")"
    if [[ ! $ramp =~ ^0+[a-z]*$ ]]; then
        timeout --kill-after=10 3600 "$bin" workload run kv --read-percent 95 --cycle-length "$rows" \
            --concurrency "$concurrency" --duration "$ramp" "$url" >"$dir/workload-ramp.out" 2>&1 ||
            die "$label: workload run kv (ramp): $(tail -3 "$dir/workload-ramp.out")"
    fi
    timeout --kill-after=10 3600 "$bin" workload run kv --read-percent 95 --cycle-length "$rows" \
        --concurrency "$concurrency" --duration "$duration" "$url" >"$dir/workload-run.out" 2>&1 ||
        die "$label: workload run kv: $(tail -3 "$dir/workload-run.out")"
    stop_cluster
    run_ops="$(sed -n 's/^kv_ops_per_s: \([0-9.]*\).*/\1/p' "$dir/workload-run.out")"
    run_p99="$(sed -n 's/^kv_p99_ms: \([0-9.]*\).*/\1/p' "$dir/workload-run.out")"
    [[ -n "$run_ops" && -n "$run_p99" ]] ||
        die "$label: no kv_ops_per_s/kv_p99_ms in the workload's output: $(tail -3 "$dir/workload-run.out")"
    say "$label: $run_ops ops/s, p99 $run_p99 ms ($(grep '^summary:' "$dir/workload-run.out"))"
}

run_ops=""
run_p99=""
declare -a base_ops base_p99 head_ops head_p99
for ((r = 1; r <= rounds; r++)); do
    say "round $r/$rounds: base ${base_sha:0:12}"
    run_once "base-$r" "$base_bin"
    base_ops+=("$run_ops"); base_p99+=("$run_p99")
    say "round $r/$rounds: head ${head_sha:0:12}$dirty"
    run_once "head-$r" "$head_bin"
    head_ops+=("$run_ops"); head_p99+=("$run_p99")
done

# --- report ---------------------------------------------------------------------------------

mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.1f", s / NR }'; }
echo
echo "kv95: 3-node insecure cluster on 127.0.0.1, $profile builds, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo "workload run kv --read-percent 95 --concurrency $concurrency --cycle-length $rows --duration $duration (after init kv --insert-count $rows and a $ramp ramp), against node 1"
printf '%-28s %-30s %-30s\n' figure "base ${base_sha:0:12}" "head ${head_sha:0:12}$dirty"
printf '%-28s %-30s %-30s\n' "kv95_ops_per_s (runs)" "${base_ops[*]}" "${head_ops[*]}"
printf '%-28s %-30s %-30s\n' "kv95_p99_ms (runs)" "${base_p99[*]}" "${head_p99[*]}"
bo="$(mean "${base_ops[@]}")"; ho="$(mean "${head_ops[@]}")"
bp="$(mean "${base_p99[@]}")"; hp="$(mean "${head_p99[@]}")"
echo
echo "kv95_base_ops_per_s: $bo ops/s"
echo "kv95_head_ops_per_s: $ho ops/s"
echo "kv95_base_p99_ms: $bp ms"
echo "kv95_head_p99_ms: $hp ms"
awk -v b="$bo" -v h="$ho" 'BEGIN { if (b > 0) printf "kv95_ops_ratio_head_to_base: %.2f x\n", h / b }'
awk -v b="$bp" -v h="$hp" 'BEGIN { if (b > 0) printf "kv95_p99_ratio_head_to_base: %.2f x\n", h / b }'
