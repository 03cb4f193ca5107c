#!/usr/bin/env bash
# N steno instances behind HAProxy on this machine (docs/scaling.md).
#
#   deploy/local-cluster.sh up [--instances N] [--max-sessions M[,M2,...]] [--port P]
#                              [--workers W] [--dir DIR]
#   deploy/local-cluster.sh down    [--dir DIR]   stop everything `up` started
#   deploy/local-cluster.sh roll    [--dir DIR]   drain and restart one instance at a time
#   deploy/local-cluster.sh restart I [--dir DIR] stop instance I (SIGTERM) if running, start it
#   deploy/local-cluster.sh status  [--dir DIR]   each instance's /ready and HAProxy's view
#
# `up` starts instances steno1..stenoN on 127.0.0.1:P+1..P+N (agents on
# P+1001..P+1000+N) and HAProxy on 127.0.0.1:P (default 8080) with
# deploy/haproxy/haproxy.cfg written out for N instances, waits until the
# balancer answers and has every instance in rotation with its weight
# (read from HAProxy's admin socket with python3), and prints its address.
# --max-sessions takes one value for all, or one per instance (4,8,4:
# instances of different sizes).
# Everything lives in DIR (default target/cluster): configs, pids, logs,
# each instance's spool. The instances run the binary in $STENO_BIN, or
# target/release/steno (built, with the model, when missing); any other
# STENO_* variable in the environment reaches every instance as config.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cmd="${1:-}"
[ -n "$cmd" ] && shift
instances=3 max_sessions=24 port=8080 workers="" dir="target/cluster" which=""
while [ $# -gt 0 ]; do
    case "$1" in
        --instances) instances="$2"; shift 2 ;;
        --max-sessions) max_sessions="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        [0-9]*) which="$1"; shift ;;
        *) echo "local-cluster: unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
    esac
done
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
state="$dir/cluster.env"

say() { echo "local-cluster: $*" >&2; }
die() { say "$*"; exit 1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true; }

# Waits until URL answers 200, up to $2 seconds.
wait_200() {
    local url="$1" limit="$2" i
    for ((i = 0; i < limit * 5; i++)); do
        [ "$(http_code "$url")" = 200 ] && return 0
        sleep 0.2
    done
    return 1
}

# The per-instance size: the Ith of a comma list, or the one value.
size_of() {
    local i="$1" list="$2"
    IFS=, read -r -a sizes <<<"$list"
    if [ "${#sizes[@]}" -eq 1 ]; then echo "${sizes[0]}"; else echo "${sizes[$((i - 1))]:-}"; fi
}

steno_bin() {
    if [ -n "${STENO_BIN:-}" ]; then echo "$STENO_BIN"; return; fi
    if [ ! -x target/release/steno ] || [ ! -f models/ggml-tiny.en-q8_0.bin ]; then
        say "building steno (release) and fetching the model, once"
        make -s model MODEL_PROFILE=release >&2
        cargo build --release --bin steno >&2
    fi
    echo "$root/target/release/steno"
}

start_instance() {
    local i="$1" name="steno$1"
    # shellcheck disable=SC1090
    source "$state"
    local size; size="$(size_of "$i" "$MAX_SESSIONS")"
    [ -n "$size" ] || die "--max-sessions names no size for instance $i"
    mkdir -p "$dir/$name/spool"
    (
        export STENO_SERVER__LISTEN="127.0.0.1:$((PORT + i))"
        export STENO_SERVER__AGENT_LISTEN="127.0.0.1:$((PORT + 1000 + i))"
        export STENO_SERVER__INSTANCE_ID="$name"
        export STENO_SERVER__WEB_DEMO_DIR="$root/web-demo"
        export STENO_ADMISSION__MAX_SESSIONS="$size"
        export STENO_FILES__SPOOL_DIR="$dir/$name/spool"
        export STENO_MODEL__PATH="${STENO_MODEL__PATH:-$root/models/ggml-tiny.en-q8_0.bin}"
        [ -n "$WORKERS" ] && export STENO_WORKERS__COUNT="$WORKERS"
        exec "$BIN" serve --config "$root/config.toml" >>"$dir/$name.log" 2>&1
    ) &
    echo $! >"$dir/$name.pid"
}

# SIGTERM, then the drain (server.drain_timeout_s, 10 s by default) and a
# margin; SIGKILL after that.
stop_pid_file() {
    local pidfile="$1" limit="${2:-20}" i
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    local pid; pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    say "pid $pid did not stop within ${limit} s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

# HAProxy's view of the live backend: "NAME OP_STATE ADMIN_STATE WEIGHT"
# per instance, read from its admin socket (python3: no socat needed).
lb_servers() {
    python3 - "$dir/haproxy.sock" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show servers state\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
for line in data.decode().splitlines():
    f = line.split()
    if len(f) > 8 and f[1] == "live" and not f[3].endswith("_refuse"):
        print(f[3], f[5], f[6], f[7])
PY
}

# Waits up to $2 s until HAProxy has instance $1 up, not draining, with its
# agent's weight (its capacity, at most 256): only then do sessions spread
# as the weights say.
wait_in_rotation() {
    local i="$1" limit="$2" want t
    # shellcheck disable=SC1090
    source "$state"
    want="$(size_of "$i" "$MAX_SESSIONS")"
    [ "$want" -gt 256 ] && want=256
    for ((t = 0; t < limit * 5; t++)); do
        [ "$(lb_servers | awk -v n="steno$i" '$1 == n { print $2, $3, $4 }')" = "2 0 $want" ] && return 0
        sleep 0.2
    done
    return 1
}

# Healthy on its own port, then in HAProxy's rotation with its weight.
wait_instance() {
    local i="$1"
    # shellcheck disable=SC1090
    source "$state"
    wait_200 "http://127.0.0.1:$((PORT + i))/health" 120 ||
        die "steno$i did not become healthy (see $dir/steno$i.log)"
    wait_in_rotation "$i" 20 || die "HAProxy did not take steno$i back (see $dir/haproxy.log)"
}

write_haproxy_cfg() {
    # Each block between "# each instance:" and "# end" holds the steno1..3
    # lines of the file as written; the steno1 lines are the template.
    awk -v n="$instances" -v port="$port" '
        /^ *# each instance:/ { print; inblock = 1; tpl = ""; next }
        inblock && /^ *# end/ {
            for (i = 1; i <= n; i++) {
                line = tpl
                gsub(/steno1/, "steno" i, line)
                gsub(/127\.0\.0\.1:8081/, "127.0.0.1:" (port + i), line)
                gsub(/agent-port 9081/, "agent-port " (port + 1000 + i), line)
                printf "%s", line
            }
            print; inblock = 0; next
        }
        inblock { if ($0 ~ /steno1([^0-9]|$)/) tpl = tpl $0 "\n"; next }
        { print }
    ' deploy/haproxy/haproxy.cfg >"$dir/haproxy.cfg"
}

start_haproxy() {
    # shellcheck disable=SC1090
    source "$state"
    command -v haproxy >/dev/null || die "haproxy is not installed (bash scripts/install-deps.sh)"
    export STENO_LB_BIND="127.0.0.1:$PORT" STENO_LB_RUN="$dir" STENO_LB_CONF="$root/deploy/haproxy"
    haproxy -c -q -f "$dir/haproxy.cfg" || die "haproxy refused $dir/haproxy.cfg"
    haproxy -W -f "$dir/haproxy.cfg" >>"$dir/haproxy.log" 2>&1 &
    echo $! >"$dir/haproxy.pid"
}

case "$cmd" in
    up)
        if [ -f "$state" ] && alive "$dir/haproxy.pid"; then
            die "a cluster already runs from $dir; run down first"
        fi
        bin="$(steno_bin)"
        cat >"$state" <<EOF
INSTANCES=$instances
PORT=$port
MAX_SESSIONS=$max_sessions
WORKERS=$workers
BIN=$bin
EOF
        write_haproxy_cfg
        for ((i = 1; i <= instances; i++)); do start_instance "$i"; done
        for ((i = 1; i <= instances; i++)); do
            wait_200 "http://127.0.0.1:$((port + i))/health" 120 ||
                die "steno$i did not become healthy (see $dir/steno$i.log)"
        done
        start_haproxy
        wait_200 "http://127.0.0.1:$port/ready" 30 ||
            die "the balancer does not answer (see $dir/haproxy.log)"
        # Every instance's weight (its capacity) in place before the first
        # session, so leastconn never weighs a reported weight against a
        # configured one.
        for ((i = 1; i <= instances; i++)); do
            wait_in_rotation "$i" 20 || die "HAProxy did not take steno$i (see $dir/haproxy.log)"
        done
        say "$instances instances (max_sessions $max_sessions) behind HAProxy"
        echo "http://127.0.0.1:$port"
        ;;
    down)
        [ -f "$state" ] || { say "nothing runs from $dir"; exit 0; }
        # shellcheck disable=SC1090
        source "$state"
        for ((i = 1; i <= INSTANCES; i++)); do stop_pid_file "$dir/steno$i.pid" & done
        wait
        stop_pid_file "$dir/haproxy.pid" 10
        rm -f "$state"
        say "stopped"
        ;;
    restart)
        [ -n "$which" ] || die "restart takes an instance number"
        [ -f "$state" ] || die "no cluster runs from $dir"
        stop_pid_file "$dir/steno$which.pid"
        start_instance "$which"
        wait_instance "$which"
        say "steno$which restarted"
        ;;
    roll)
        [ -f "$state" ] || die "no cluster runs from $dir"
        # shellcheck disable=SC1090
        source "$state"
        for ((i = 1; i <= INSTANCES; i++)); do
            say "draining steno$i"
            stop_pid_file "$dir/steno$i.pid"
            start_instance "$i"
            wait_instance "$i"
            say "steno$i back"
        done
        say "rolled $INSTANCES instances"
        ;;
    status)
        [ -f "$state" ] || { say "nothing runs from $dir"; exit 1; }
        # shellcheck disable=SC1090
        source "$state"
        for ((i = 1; i <= INSTANCES; i++)); do
            echo "steno$i 127.0.0.1:$((PORT + i)) $(curl -s -m 2 "http://127.0.0.1:$((PORT + i))/ready" || echo down)"
        done
        echo "balancer http://127.0.0.1:$PORT"
        ;;
    *)
        sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
