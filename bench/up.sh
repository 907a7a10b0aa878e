#!/usr/bin/env bash
# Benchmark of `l5d-ecs` (issues 5 and 14), in one run:
#
#   bench/up.sh
#
# 1. bench/.venv with awscli (v1) and boto3; jq and hyperfine from Debian if missing;
#    moto[server] at the version pinned in tests/awsrules/requirements.txt (scripts/venv
#    --pinned moto), from the project's .venv (or installed into bench/.venv); for the rows on
#    the AWS rules layer, the project's .venv (scripts/venv);
# 2. `cargo build --release` (unless BENCH_BIN names the binary to measure);
# 3. moto on a loopback port, and bench/latency_proxy.py in front of it; the AWS rules layer
#    (tests/awsrules/serve: moto behind a real account's consistency delays and ECS's DAEMON
#    scheduler) on another port, with a second proxy in front of it;
# 4. the rows (BENCH_ROWS), each BENCH_REPEATS times:
#    up:        for each latency (0, 50, 200 ms per call), on a reset, warmed moto with
#               ecsInstanceRole present: l5d-ecs up --no-wait cold, again warm, down --yes; a
#               cold up without the role (what creating it costs); the guide's commands with
#               the aws CLI (bench/guide.sh); the same calls from one boto3 process
#               (bench/sequential.py);
#    startup:   binary start-up (hyperfine, else a loop);
#    scale:     on the rules layer at 100 ms per call, at 2 and at 60 nodes: set-up untimed
#               (reset, warm, role, `up --no-wait` with the ASG at N nodes straight to the rules
#               layer, N container instances registered by `bench.py agent`, which then waits
#               until the scheduler runs every daemon on every node), then timed: status,
#               deploy hello-world --count N (waits for the N tasks to be RUNNING), status
#               again, down --yes;
#    overshoot: on the rules layer at 100 ms per call with long delays (instance profile 10 s,
#               network interfaces 30 s, ASG deletion 20 s), no ecsInstanceRole yet: a cold
#               `up --no-wait` (creates the role and profile and waits for the profile), then
#               `down --yes` (waits for the ASG's deletion and the network interfaces); the
#               rules layer's events say how long after AWS was ready each wait ended;
# 5. bench/results.md, rewritten whole (with the binary's size); raw data in bench/out/.
#
# Knobs (environment):
#   BENCH_ROWS          rows to run, comma-separated (default "up,startup,scale,overshoot");
#                       results.md then holds only those
#   BENCH_BIN           measure this binary (e.g. target/debug/l5d-ecs) instead of building
#                       the release one; no cargo command is run
#   BENCH_REPEATS       runs of each measurement (default 3)
#   BENCH_LATENCIES     the up row's latencies in ms (default "0 50 200")
#   BENCH_RULES_LATENCY ms per call of the scale and overshoot rows (default 100)
#   BENCH_SCALE_NODES   the scale row's sizes (default "2 60"; the targets compare the
#                       largest with the smallest)
#   BENCH_SCALE_DELAYS  the rules layer's delays during the scale row, JSON (default: every
#                       consistency delay 0, so fixed waits do not hide per-node costs)
#   BENCH_WAIT_DELAYS   the overshoot row's delays, JSON (default
#                       '{"instance_profile": 10, "eni_release": 30, "asg_delete": 20}')
#   BENCH_RUN_TIMEOUT   seconds after which a timed run of the rules rows is killed (default 900)
#   BENCH_MAX_LOAD (default 1.0) and BENCH_LOAD_WAIT (seconds, default 300): before timing,
#                       wait up to BENCH_LOAD_WAIT for the 1-minute load average to fall under
#                       BENCH_MAX_LOAD (the machine is shared; what it was doing is written
#                       into results.md either way).
#
#   BENCH_BIN=target/debug/l5d-ecs BENCH_ROWS=scale,overshoot BENCH_REPEATS=1 bench/up.sh
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
RULES_LATENCY=${BENCH_RULES_LATENCY:-100}
SCALE_NODES=${BENCH_SCALE_NODES:-"2 60"}
SCALE_DELAYS=${BENCH_SCALE_DELAYS:-'{"instance_profile": 0, "service_linked_role": 0, "eni_release": 0, "asg_delete": 0, "service_drain": 0, "container_instance_deregister": 0}'}
WAIT_DELAYS=${BENCH_WAIT_DELAYS:-'{"instance_profile": 10, "eni_release": 30, "asg_delete": 20}'}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-900}
ROWS=${BENCH_ROWS:-up,startup,scale,overshoot}
MOTO_VERSION=$("$ROOT/scripts/venv" --pinned moto)
STACK=l5d-demo

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

ROWS=${ROWS// /}
for row in ${ROWS//,/ }; do
    [[ $row =~ ^(up|startup|scale|overshoot)$ ]] || die "BENCH_ROWS: no row '$row' (rows: up, startup, scale, overshoot)"
done
[[ -n ${ROWS//,/} ]] || die "BENCH_ROWS names no row"
has_row() { [[ ",$ROWS," == *",$1,"* ]]; }
RULES_ROWS=
if has_row scale || has_row overshoot; then RULES_ROWS=1; fi

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
if [[ -n $RULES_ROWS ]]; then
    # the rules layer runs on the project's .venv (tests/awsrules/serve)
    "$ROOT/scripts/venv" || die "scripts/venv failed: the rules layer needs $ROOT/.venv"
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
if [[ -n ${BENCH_BIN:-} ]]; then
    BIN=$(realpath "$BENCH_BIN" 2>/dev/null) || die "BENCH_BIN=$BENCH_BIN: no such file"
    [[ -x $BIN ]] || die "BENCH_BIN=$BIN is not an executable"
    BUILD="the binary BENCH_BIN named ($BIN), not built by this run"
    say "measuring $BIN (BENCH_BIN; no build)"
else
    say "cargo build --release"
    cargo build --release --quiet
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/l5d-ecs
    [[ -x $BIN ]] || die "no $BIN after the build"
    BUILD="release build"
fi
BIN_BYTES=$(stat -c %s "$BIN")

# ---------------------------------------------------------------------------- moto + proxy
rm -rf "$OUT"
mkdir -p "$OUT/runs" "$OUT/files" "$OUT/state" "$OUT/scale" "$OUT/overshoot"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# until_up WHAT LOG URL...: polls (every 0.1 s, up to 60 s) until every URL answers 2xx
until_up() {
    local what=$1 log=$2; shift 2
    local deadline=$((SECONDS + 60)) url ok
    while :; do
        ok=1
        for url in "$@"; do curl -sf "$url" >/dev/null 2>&1 || { ok=; break; }; done
        [[ -n $ok ]] && return 0
        ((SECONDS < deadline)) || die "$what did not answer at $url within 60 s (see $log)"
        sleep 0.1
    done
}
if has_row up; then
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
    until_up "moto or its proxy" "$OUT/moto.log, $OUT/proxy.log" "$MOTO/moto-api/" "$CONTROL/health"
fi
if [[ -n $RULES_ROWS ]]; then
    RULES_PORT=$(free_port); RPROXY_PORT=$(free_port); RCONTROL_PORT=$(free_port)
    RULES=http://127.0.0.1:$RULES_PORT
    RPROXY=http://127.0.0.1:$RPROXY_PORT
    RCONTROL=http://127.0.0.1:$RCONTROL_PORT
    say "AWS rules layer on $RULES, proxy on $RPROXY (control $RCONTROL)"
    MOTO_IAM_LOAD_MANAGED_POLICIES=true L5D_RULES_QUIET=1 "$ROOT/tests/awsrules/serve" -H 127.0.0.1 -p "$RULES_PORT" \
        >"$OUT/rules.log" 2>&1 &
    PIDS+=($!)
    "$PY" "$BENCH/latency_proxy.py" --listen "127.0.0.1:$RPROXY_PORT" --control "127.0.0.1:$RCONTROL_PORT" \
        --upstream "127.0.0.1:$RULES_PORT" >"$OUT/rules-proxy.log" 2>&1 &
    PIDS+=($!)
    until_up "the rules layer or its proxy" "$OUT/rules.log, $OUT/rules-proxy.log" "$RULES/_rules/config" "$RCONTROL/health"
fi

# A fresh account with the instance role present; warmed, untimed, straight to moto.
fresh() {
    "$PY" "$BENCH/bench.py" fresh "$MOTO" "$ROOT"
}
if has_row up; then
    fresh
    AZ=$("$PY" "$BENCH/bench.py" az "$MOTO")
    "$PY" "$BENCH/bench.py" render "$ROOT" "$OUT/files" "$STACK"
fi

# Every tool gets the same environment: fake credentials, the proxy as endpoint, no
# config files, no instance metadata.
: >"$WORK/empty"
BASE_ENV=(
    env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_DEFAULT_PROFILE -u L5D_ECS_STACK -u L5D_ECS_STATE
    PATH="$VENV/bin:$PATH"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    AWS_REGION=us-west-1 AWS_DEFAULT_REGION=us-west-1
    AWS_EC2_METADATA_DISABLED=true
    AWS_CONFIG_FILE="$WORK/empty" AWS_SHARED_CREDENTIALS_FILE="$WORK/empty"
)
TOOL_ENV=("${BASE_ENV[@]}" AWS_ENDPOINT_URL="${PROXY:-http://127.0.0.1:9}")
# the rules rows: timed through their proxy; set-up straight to the rules layer
RTOOL_ENV=("${BASE_ENV[@]}" AWS_ENDPOINT_URL="${RPROXY:-http://127.0.0.1:9}")
RDIRECT_ENV=("${BASE_ENV[@]}" AWS_ENDPOINT_URL="${RULES:-http://127.0.0.1:9}")

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
    has_row up || break
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

# ---------------------------------------------------------------------------- rules layer rows
# rrun DIR LABEL REP NODES -- CMD...: one timed run through the rules layer's proxy
rrun() {
    local dir=$1 label=$2 rep=$3 nodes=$4; shift 5
    local file=$OUT/$dir/$label-$rep.json
    local sized=()
    [[ $nodes == - ]] || { file=$OUT/$dir/N$(printf %03d "$nodes")-$label-$rep.json; sized=(--nodes "$nodes"); }
    "$PY" "$BENCH/bench.py" run --label "$label" --latency "$RULES_LATENCY" --repeat "$rep" \
        --control "$RCONTROL" --rules "$RULES" --timeout "$RUN_TIMEOUT" \
        "${sized[@]}" \
        --out "$file" -- "${RTOOL_ENV[@]}" "$@" \
        || say "$dir $label$([[ $nodes == - ]] || echo " at $nodes nodes") (run $rep) failed: see ${file%.json}.stderr"
}

if has_row scale; then
    curl -sf -X POST "$RCONTROL/latency?ms=$RULES_LATENCY" >/dev/null
    for n in $SCALE_NODES; do
        for rep in $(seq "$REPEATS"); do
            tag=N$(printf %03d "$n")
            state=$OUT/state/scale-$tag-$rep.json
            setup=$OUT/scale/$tag-setup-$rep.log
            say "scale: $n nodes, run $rep: set-up (untimed; log $setup)"
            t_setup=$SECONDS
            if ! "$PY" "$BENCH/bench.py" rules-fresh "$RULES" "$ROOT" --delays "$SCALE_DELAYS" >>"$setup" 2>&1; then
                say "scale: resetting the rules layer failed (see $setup)"; continue
            fi
            if ! "${RDIRECT_ENV[@]}" "$BIN" --state "$state" up --allow-cidr 203.0.113.7/32 --no-wait \
                    --min 1 --desired "$n" --max "$n" >>"$setup" 2>&1; then
                say "scale: set-up up --no-wait at $n nodes failed (see $setup)"; continue
            fi
            # the stand-in ECS agent; polls until the daemons run on every node
            if ! "$PY" "$BENCH/bench.py" agent "$RULES" "$STACK" "$n" --timeout 600 2>&1 | tee -a "$setup" >&2; then
                say "scale: the nodes did not join, or the daemons did not run on each (see $setup)"; continue
            fi
            say "scale: set-up took $((SECONDS - t_setup)) s; timing at $RULES_LATENCY ms per call"
            rrun scale status "$rep" "$n" -- "$BIN" --state "$state" status
            rrun scale deploy "$rep" "$n" -- "$BIN" --state "$state" deploy hello-world --count "$n"
            rrun scale status-again "$rep" "$n" -- "$BIN" --state "$state" status
            rrun scale down "$rep" "$n" -- "$BIN" --state "$state" down --yes
        done
    done
fi

if has_row overshoot; then
    curl -sf -X POST "$RCONTROL/latency?ms=$RULES_LATENCY" >/dev/null
    for rep in $(seq "$REPEATS"); do
        say "overshoot: run $rep (delays $WAIT_DELAYS; no ecsInstanceRole)"
        if ! "$PY" "$BENCH/bench.py" rules-fresh "$RULES" "$ROOT" --norole --delays "$WAIT_DELAYS" \
                >"$OUT/overshoot/setup-$rep.log" 2>&1; then
            say "overshoot: resetting the rules layer failed (see $OUT/overshoot/setup-$rep.log)"; continue
        fi
        state=$OUT/state/overshoot-$rep.json
        rrun overshoot up "$rep" - -- "$BIN" --state "$state" up --allow-cidr 203.0.113.7/32 --no-wait
        rrun overshoot down "$rep" - -- "$BIN" --state "$state" down --yes
        "$PY" "$BENCH/bench.py" events "$RULES" "$OUT/overshoot/events-$rep.json"
    done
fi

# ---------------------------------------------------------------------------- start-up
if has_row startup; then
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
fi
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
    --arg build "$BUILD" \
    --argjson binary_bytes "$BIN_BYTES" \
    --arg rows "$ROWS" \
    --arg latencies "$LATENCIES" \
    --arg rules_latency "$RULES_LATENCY" \
    --arg scale_nodes "$SCALE_NODES" \
    --argjson scale_delays "$SCALE_DELAYS" \
    --argjson wait_delays "$WAIT_DELAYS" \
    '{date:$date, machine:$machine, load:$load, moto:$moto, awscli:$awscli, boto3:$boto3,
      rustc:$rustc, commit:$commit, repeats:$repeats, binary:$binary, build:$build,
      binary_bytes:$binary_bytes, rows:($rows | split(",")), latencies:$latencies,
      rules_latency:($rules_latency | tonumber), scale_nodes:$scale_nodes,
      scale_delays:$scale_delays, wait_delays:$wait_delays}' >"$OUT/meta.json"
"$PY" "$BENCH/bench.py" report "$OUT" "$BENCH/results.md"
say "wrote $BENCH/results.md (raw data in $OUT)"
