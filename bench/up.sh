#!/usr/bin/env bash
# Benchmark of `l5d-ecs up` against the guide's own commands (issue 5), in one run:
#
#   bench/up.sh
#
# 1. bench/.venv with awscli (v1) and boto3; jq and hyperfine from Debian if missing;
#    moto[server] at the version pinned in tests/awsrules/requirements.txt (scripts/venv
#    --pinned moto), from the project's .venv (or installed into bench/.venv);
# 2. `cargo build --release`;
# 3. moto on a loopback port, and bench/latency_proxy.py in front of it;
# 4. for each latency (0, 50, 200 ms per call), BENCH_REPEATS times, each run on a reset,
#    warmed moto with ecsInstanceRole present:
#    l5d-ecs up --no-wait cold, again warm, down --yes; a cold up without the role (what
#    creating it costs); the guide's commands with the aws CLI (bench/guide.sh); the same calls
#    from one boto3 process (bench/sequential.py);
# 5. binary start-up (hyperfine, else a loop);
# 6. bench/results.md, rewritten whole; raw call logs in bench/out/.
#
# Knobs (environment): BENCH_LATENCIES (default "0 50 200"), BENCH_REPEATS (default 3),
# BENCH_MAX_LOAD (default 1.0) and BENCH_LOAD_WAIT (seconds, default 300): before timing,
# wait up to BENCH_LOAD_WAIT for the 1-minute load average to fall under BENCH_MAX_LOAD
# (the machine is shared; what it was doing is written into results.md either way).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench
VENV=$BENCH/.venv
OUT=$BENCH/out
LATENCIES=${BENCH_LATENCIES:-"0 50 200"}
REPEATS=${BENCH_REPEATS:-3}
MAX_LOAD=${BENCH_MAX_LOAD:-1.0}
LOAD_WAIT=${BENCH_LOAD_WAIT:-300}
MOTO_VERSION=$("$ROOT/scripts/venv" --pinned moto)
STACK=l5d-demo

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------- tools
command -v python3 >/dev/null || die "python3 is required"
if [[ ! -x $VENV/bin/python ]]; then
    say "creating $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import awscli, boto3' 2>/dev/null; then
    say "installing awscli and boto3 into $VENV"
    "$VENV/bin/python" -m pip install --quiet awscli boto3
fi
MOTO_SERVER=$ROOT/.venv/bin/moto_server
moto_version() { "$1" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true; }
if [[ ! -x $MOTO_SERVER || "$(moto_version "$ROOT/.venv/bin/python")" != "$MOTO_VERSION" ]]; then
    MOTO_SERVER=$VENV/bin/moto_server
    if [[ ! -x $MOTO_SERVER || "$(moto_version "$VENV/bin/python")" != "$MOTO_VERSION" ]]; then
        say "installing moto[server]==$MOTO_VERSION into $VENV"
        "$VENV/bin/python" -m pip install --quiet "moto[server]==$MOTO_VERSION"
    fi
fi
MOTO_PY=$(dirname "$MOTO_SERVER")/python
apt_updated=
apt_install() {
    [[ -n $apt_updated ]] || { apt-get update -qq >/dev/null && apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v jq >/dev/null || { say "installing jq"; apt_install jq; }
command -v jq >/dev/null || die "jq is missing and could not be installed"
if ! command -v hyperfine >/dev/null; then
    say "installing hyperfine (optional)"
    apt_install hyperfine || say "no hyperfine: start-up is timed with a loop"
fi
PY=$VENV/bin/python

# ---------------------------------------------------------------------------- build
say "cargo build --release"
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/l5d-ecs
[[ -x $BIN ]] || die "no $BIN after the build"

# ---------------------------------------------------------------------------- moto + proxy
rm -rf "$OUT"
mkdir -p "$OUT/runs" "$OUT/files" "$OUT/state"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port); PROXY_PORT=$(free_port); CONTROL_PORT=$(free_port)
MOTO=http://127.0.0.1:$MOTO_PORT
PROXY=http://127.0.0.1:$PROXY_PORT
CONTROL=http://127.0.0.1:$CONTROL_PORT

say "moto on $MOTO, proxy on $PROXY (control $CONTROL)"
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$MOTO_SERVER" -H 127.0.0.1 -p "$MOTO_PORT" >"$OUT/moto.log" 2>&1 &
PIDS+=($!)
"$PY" "$BENCH/latency_proxy.py" --listen "127.0.0.1:$PROXY_PORT" --control "127.0.0.1:$CONTROL_PORT" \
    --upstream "127.0.0.1:$MOTO_PORT" >"$OUT/proxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    if curl -sf "$MOTO/moto-api/" >/dev/null 2>&1 && curl -sf "$CONTROL/health" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -sf "$MOTO/moto-api/" >/dev/null || die "moto did not start (see $OUT/moto.log)"
curl -sf "$CONTROL/health" >/dev/null || die "the proxy did not start (see $OUT/proxy.log)"

# A fresh account with the instance role present; warmed, untimed, straight to moto.
fresh() {
    "$PY" "$BENCH/bench.py" fresh "$MOTO" "$ROOT"
}
fresh
AZ=$("$PY" "$BENCH/bench.py" az "$MOTO")
"$PY" "$BENCH/bench.py" render "$ROOT" "$OUT/files" "$STACK"

# Every tool gets the same environment: fake credentials, the proxy as endpoint, no
# config files, no instance metadata.
: >"$WORK/empty"
TOOL_ENV=(
    env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_DEFAULT_PROFILE -u L5D_ECS_STACK -u L5D_ECS_STATE
    PATH="$VENV/bin:$PATH"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    AWS_REGION=us-west-1 AWS_DEFAULT_REGION=us-west-1
    AWS_ENDPOINT_URL="$PROXY" AWS_EC2_METADATA_DISABLED=true
    AWS_CONFIG_FILE="$WORK/empty" AWS_SHARED_CREDENTIALS_FILE="$WORK/empty"
)

# ---------------------------------------------------------------------------- quiet machine?
load1() { cut -d' ' -f1 /proc/loadavg; }
busy() { # other processes over 10% CPU during one second (top's second frame), as name:pct
    top -b -n 2 -d 1 -w 200 2>/dev/null | awk -v mine=" ${PIDS[*]} " '
        /^top -/ {f++}
        f == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 > 10 && index(mine, " " $1 " ") == 0 \
            && $12 !~ /^(l5d-ecs|aws|top|python3?|bash|curl|env)$/ {printf "%s:%s ", $12, $9}'
}
sampler() { while :; do echo "$(date +%s) $(load1) $(busy)"; sleep 9; done; }
waited=0
while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN{exit !(l >= m)}' && ((waited < LOAD_WAIT)); do
    ((waited == 0)) && say "load $(load1) >= $MAX_LOAD: waiting up to ${LOAD_WAIT}s for a quieter machine"
    sleep 10; waited=$((waited + 10))
done
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
sampler >"$OUT/samples.txt" 2>/dev/null &
SAMPLER=$!
PIDS+=("$SAMPLER")

# ---------------------------------------------------------------------------- runs
run() { # run LABEL LAT REP -- CMD...
    local label=$1 lat=$2 rep=$3; shift 4
    "$PY" "$BENCH/bench.py" run --label "$label" --latency "$lat" --repeat "$rep" --control "$CONTROL" \
        --out "$OUT/runs/L$(printf %03d "$lat")-$label-$rep.json" -- "${TOOL_ENV[@]}" "$@" \
        || say "$label at $lat ms (run $rep) failed: see $OUT/runs/L$(printf %03d "$lat")-$label-$rep.stderr"
}

for lat in $LATENCIES; do
    curl -sf -X POST "$CONTROL/latency?ms=$lat" >/dev/null
    say "latency $lat ms per call (load $(cut -d' ' -f1-3 /proc/loadavg))"
    for rep in $(seq "$REPEATS"); do
        state=$OUT/state/L$lat-$rep.json
        fresh
        run up-cold "$lat" "$rep" -- "$BIN" --state "$state" up --allow-cidr 203.0.113.7/32 --no-wait
        run up-warm "$lat" "$rep" -- "$BIN" --state "$state" up --allow-cidr 203.0.113.7/32 --no-wait
        run down "$lat" "$rep" -- "$BIN" --state "$state" down --yes
        "$PY" "$BENCH/bench.py" fresh-norole "$MOTO"
        run up-cold-norole "$lat" "$rep" -- "$BIN" --state "$OUT/state/L$lat-$rep-norole.json" up --allow-cidr 203.0.113.7/32 --no-wait
        fresh
        run guide-cli "$lat" "$rep" -- bash "$BENCH/guide.sh" "$OUT/files" "$AZ"
        fresh
        run sequential "$lat" "$rep" -- "$PY" "$BENCH/sequential.py" "$OUT/files" "$STACK" "$AZ"
    done
done

# ---------------------------------------------------------------------------- start-up
say "binary start-up"
mkdir -p "$WORK/cwd"
startup() { # startup NAME ARGS...
    local name=$1; shift
    if command -v hyperfine >/dev/null; then
        (cd "$WORK/cwd" && hyperfine -N -i --warmup 10 --runs 200 --style none \
            --export-json "$OUT/startup-$name.json" -- "$BIN $*" >/dev/null 2>&1)
    else
        (cd "$WORK/cwd" && "$PY" "$BENCH/bench.py" loop -n 200 --out "$OUT/startup-$name.json" -- "$BIN" "$@")
    fi
}
startup 1-help --help
startup 2-sizes up --min 3 --desired 2
startup 3-unknown-flag up --no-such-flag
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
kill "$SAMPLER" 2>/dev/null || true

# ---------------------------------------------------------------------------- report
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || COMMIT="$COMMIT + uncommitted changes in src/"
CPU=$(awk -F: '/model name/{gsub(/^ +/,"",$2); print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
WAITED_NOTE=""
((waited > 0)) && WAITED_NOTE=" (waited ${waited}s for it to fall under $MAX_LOAD first)"
jq -n \
    --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --arg machine "$(nproc) x $CPU, $MEM, Linux $(uname -r)" \
    --arg load "1/5/15-minute load average $LOAD_START at the start of timing$WAITED_NOTE, $LOAD_END at the end, on $(nproc) cores" \
    --arg moto "$("$MOTO_PY" -c 'import importlib.metadata as m; print(m.version("moto"))')" \
    --arg awscli "$("$PY" -c 'import awscli; print(awscli.__version__)')" \
    --arg boto3 "$("$PY" -c 'import boto3; print(boto3.__version__)')" \
    --arg rustc "$(rustc --version)" \
    --arg commit "$COMMIT" \
    --arg repeats "$REPEATS" \
    --arg binary "$BIN" \
    '{date:$date, machine:$machine, load:$load, moto:$moto, awscli:$awscli, boto3:$boto3,
      rustc:$rustc, commit:$commit, repeats:$repeats, binary:$binary}' >"$OUT/meta.json"
"$PY" "$BENCH/bench.py" report "$OUT" "$BENCH/results.md"
say "wrote $BENCH/results.md (raw data in $OUT)"
