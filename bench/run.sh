#!/usr/bin/env bash
# Side-by-side benchmark: moonpool vs nginx + lua-nginx-module, same Lua code.
# See bench/README.md. Knobs (environment):
#   BENCH_DURATION=10s    wrk duration of each measured run
#   BENCH_ROUNDS=3        measured runs per server and scenario (median shown)
#   BENCH_WARMUP=2s       unmeasured run per server and scenario first (0 = none)
#   BENCH_CONNECTIONS=50  BENCH_THREADS=1   wrk -c / -t
#   BENCH_SCENARIOS="hello 4k hello-close https-hello"  subset, in bench/scenarios.py
#   BENCH_SERVERS="moonpool nginx"          e.g. "nginx" for nginx only
#   BENCH_SERVER_CPU=1  BENCH_WRK_CPU=0     taskset CPUs
#   MOONPOOL_BIN=build/moonpool             binary under test
#   BENCH_NO_DEPS=1       do not check/install Debian packages
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
helper="$here/bench.py"

export BENCH_DURATION="${BENCH_DURATION:-10s}"
export BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
export BENCH_WARMUP="${BENCH_WARMUP:-2s}"
export BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-50}"
export BENCH_THREADS="${BENCH_THREADS:-1}"
export BENCH_SERVER_CPU="${BENCH_SERVER_CPU:-1}"
export BENCH_WRK_CPU="${BENCH_WRK_CPU:-0}"
export MOONPOOL_BIN="${MOONPOOL_BIN:-$root/build/moonpool}"
BENCH_SERVERS="${BENCH_SERVERS:-moonpool nginx}"
START_TIMEOUT="${BENCH_START_TIMEOUT:-10}"

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*"; }

# ------------------------------------------------------------- prerequisites
if [ -z "${BENCH_NO_DEPS:-}" ]; then
    "$root/tools/deps.sh" bench || die "could not install the bench packages"
fi
for tool in python3 wrk taskset; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
for sv in $BENCH_SERVERS; do
    case $sv in
    moonpool)
        [ -x "$MOONPOOL_BIN" ] || die "moonpool binary not found at $MOONPOOL_BIN
  build it first ('make build' or 'make bench'), set MOONPOOL_BIN,
  or run nginx alone: BENCH_SERVERS=nginx $0" ;;
    nginx)
        command -v nginx >/dev/null || die "nginx not found (tools/deps.sh bench)" ;;
    *) die "unknown server '$sv' in BENCH_SERVERS (moonpool, nginx)" ;;
    esac
done
if [ "$(nproc)" -lt 2 ]; then
    say "WARNING: $(nproc) CPU: server and wrk share a core, figures are not comparable to 2-core runs"
    BENCH_SERVER_CPU=0 BENCH_WRK_CPU=0
fi
scenarios=$(python3 "$helper" scenarios) || exit 1

# ------------------------------------------------------------- work dir
mkdir -p "$here/out"
work=$(mktemp -d "$here/out/run.XXXXXX")
export BENCH_WORK="$work"  # bench.py finds the run's TLS ports there
# keep the last 5 runs' configs and logs
ls -dt "$here"/out/run.* 2>/dev/null | tail -n +6 | while read -r old; do rm -rf "$old"; done
results="$work/results.jsonl"
rss="$work/rss.json"
port_moonpool=$(python3 "$helper" freeport)
port_nginx=$(python3 "$helper" freeport)
while [ "$port_nginx" = "$port_moonpool" ]; do port_nginx=$(python3 "$helper" freeport); done
python3 "$helper" configs "$work" "$port_moonpool" "$port_nginx"
say "configs and logs in $work"

# one redis-server for the run when a scenario needs it (stopped by pid)
redis_pid=""
if [ -s "$work/redis.port" ]; then
    command -v redis-server >/dev/null || die "redis-server not found (tools/deps.sh test)"
    redis_port=$(cat "$work/redis.port")
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$work" >"$work/redis.log" 2>&1 &
    redis_pid=$!
    for i in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $redis_port), 0.2)" \
            2>/dev/null && break
        [ "$i" = 100 ] && die "redis-server did not start on port $redis_port"
        sleep 0.05
    done
    say "redis-server pid $redis_pid on 127.0.0.1:$redis_port"
fi

# ------------------------------------------------------------- servers
declare -A pid port
port[moonpool]=$port_moonpool
port[nginx]=$port_nginx

stop_server() {
    local sv=$1 p=${pid[$1]:-} i
    [ -n "$p" ] || return 0
    pid[$sv]=""
    kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
        say "$sv (pid $p) ignored TERM for 5s, killing it"
        kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for sv in $BENCH_SERVERS; do stop_server "$sv"; done
    if [ -n "${redis_pid:-}" ]; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    exit $rc
}
trap cleanup EXIT
trap 'echo; say interrupted; exit 130' INT TERM

show_logs() {
    local sv=$1 f shown=""
    for f in "$work/$sv.stdout" "$work/$sv-error.log"; do
        [ -s "$f" ] || continue
        echo "---- $f (last 40 lines)" >&2
        tail -n 40 "$f" >&2
        shown=1
    done
    [ -n "$shown" ] || echo "---- $sv wrote nothing to $work/$sv.stdout or $work/$sv-error.log" >&2
}

start_server() {
    local sv=$1
    case $sv in
    moonpool)
        if ! "$MOONPOOL_BIN" -t -c "$work/moonpool.yaml" >"$work/moonpool-check.out" 2>&1; then
            cat "$work/moonpool-check.out" >&2
            die "moonpool rejects the generated config $work/moonpool.yaml"
        fi
        taskset -c "$BENCH_SERVER_CPU" "$MOONPOOL_BIN" -c "$work/moonpool.yaml" \
            >"$work/moonpool.stdout" 2>&1 &
        ;;
    nginx)
        taskset -c "$BENCH_SERVER_CPU" nginx -p "$work/" -c "$work/nginx.conf" \
            -e "$work/nginx-error.log" >"$work/nginx.stdout" 2>&1 &
        ;;
    esac
    pid[$sv]=$!
    if ! python3 "$helper" wait "${pid[$sv]}" "${port[$sv]}" "$START_TIMEOUT"; then
        show_logs "$sv"
        local how="still running"
        if ! kill -0 "${pid[$sv]}" 2>/dev/null; then
            local st=0
            wait "${pid[$sv]}" || st=$?
            how="exited with status $st"
            pid[$sv]=""
        fi
        die "$sv did not start ($how; port ${port[$sv]}, config $work/$sv.$([ "$sv" = nginx ] && echo conf || echo yaml))"
    fi
    python3 "$helper" rss "$sv" "${pid[$sv]}" "$rss"
}

for sv in $BENCH_SERVERS; do
    start_server "$sv"
done

# ------------------------------------------------------------- load
measure() { # server scenario round [--warmup]
    local sv=$1
    kill -0 "${pid[$sv]}" 2>/dev/null || { show_logs "$sv"; die "$sv (pid ${pid[$sv]}) died"; }
    python3 "$helper" measure "$sv" "${pid[$sv]}" "${port[$sv]}" "$2" "$3" "$results" ${4:-} \
        || { show_logs "$sv"; die "measuring $sv on $2 failed"; }
}

reversed=$(for sv in $BENCH_SERVERS; do echo "$sv"; done | tac | tr '\n' ' ')
for scen in $scenarios; do
    say "scenario $scen"
    if [ "$BENCH_WARMUP" != 0 ]; then
        for sv in $BENCH_SERVERS; do measure "$sv" "$scen" 0 --warmup; done
    fi
    for r in $(seq "$BENCH_ROUNDS"); do
        # alternate who goes first so slow drift of the VM hits both alike
        order=$BENCH_SERVERS
        [ $((r % 2)) -eq 0 ] && order=$reversed
        for sv in $order; do measure "$sv" "$scen" "$r"; done
    done
done

for sv in $BENCH_SERVERS; do
    kill -0 "${pid[$sv]}" 2>/dev/null || { show_logs "$sv"; die "$sv died during the run"; }
    # both log at warn: anything there deserves a look
    if [ -s "$work/$sv-error.log" ]; then
        say "NOTE: $sv logged $(wc -l <"$work/$sv-error.log") line(s) at warn or above: $work/$sv-error.log"
        tail -n 5 "$work/$sv-error.log" | sed 's/^/    /'
    fi
done
for sv in $BENCH_SERVERS; do stop_server "$sv"; done

echo
python3 "$helper" report "$results" "$rss" "$here/out/latest.md"
cp "$results" "$here/out/latest.jsonl"
say "written: $here/out/latest.md (paste into bench/RESULTS.md), raw runs in $here/out/latest.jsonl"
