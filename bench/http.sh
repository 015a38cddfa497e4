#!/bin/sh
# HTTP throughput of lyceumd against nginx on the same machine, as a yardstick.
#
#   sh bench/http.sh [LYCEUMD_BINARY]        (default $LYCEUMD_BIN, else build/lyceumd;
#                                             `make bench` runs it)
#
# Starts `lyceumd serve` twice, each on a free loopback port with a fresh data directory and a user
# and an API key made with its own CLI, and loads GET /api/v2/external/user/status (API key
# authentication, answered from the caller cache after the first request; one SQLite query
# and a JSON answer) with wrk on two servers, one with the access log on (the default, written
# to a file as a service manager would) and one with --no-access-log, and nginx on another free
# port with a private config (worker_processes auto, access_log off, a fixed JSON answer). The
# three are loaded in turn, BENCH_ROUNDS times, and each figure is the median of its rounds.
# It prints requests/s and p99 latency of each, the ratio lyceumd/nginx, and the resident
# memory (VmRSS) of lyceumd after start-up and after the load. Everything it starts is
# stopped, and its temporary directory removed, when it exits, however it exits.
#
# Knobs: BENCH_DURATION (wrk -d, default 10s), BENCH_ROUNDS (3), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2).
set -eu

bin=${1:-${LYCEUMD_BIN:-build/lyceumd}}
dur=${BENCH_DURATION:-10s}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNECTIONS:-64}
wthreads=${BENCH_THREADS:-2}

for tool in wrk curl nginx; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is not installed" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "bench: $bin is not built (make \$(B)/lyceumd)" >&2; exit 2; }
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/lyceumd-bench.XXXXXX")
lyceumd_pid=
nginx_pid=

cleanup() {
    for p in $lyceumd_pid $nginx_pid; do
        kill "$p" 2>/dev/null || true
    done
    for p in $lyceumd_pid $nginx_pid; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        echo $((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
    fi
}

wait_up() { # URL PID
    i=0
    while ! curl -sf -o /dev/null "$1"; do
        kill -0 "$2" 2>/dev/null || { echo "bench: server exited during start-up" >&2; return 1; }
        i=$((i + 1))
        [ $i -lt 200 ] || { echo "bench: $1 did not answer" >&2; return 1; }
        sleep 0.05
    done
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Runs wrk on URL; prints "REQ_PER_S P99_MS NON2XX".
load() {
    wrk -t"$wthreads" -c"$conns" -d"$dur" --latency -H "Authorization: Bearer $key" "$1" \
        >"$work/wrk.out" 2>&1 || { cat "$work/wrk.out" >&2; return 1; }
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            return v
        }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        END { printf "%.0f %.2f %d\n", rps, p99, bad }
    ' "$work/wrk.out"
}

# --- lyceumd ---------------------------------------------------------------------------
# Two servers, each with its own data directory, user and key: one with the access log on (the
# default, written to a file as a service manager would), one with --no-access-log.
start_lyceumd() { # NAME extra serve arguments; sets port and key
    name=$1
    shift
    d=$work/data-$name
    printf 'bench-password-1\n' |
        "$bin" --data "$d" user add bench@example.com --password-stdin >/dev/null 2>>"$work/$name.log"
    key=$("$bin" --data "$d" key add bench@example.com bench 2>>"$work/$name.log")
    port=$(free_port)
    "$bin" serve --listen "127.0.0.1:$port" --data "$d" "$@" >>"$work/$name.log" 2>&1 &
    lyceumd_pid="$lyceumd_pid $!"
    wait_up "http://127.0.0.1:$port/health" "$!"
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" \
        "http://127.0.0.1:$port/api/v2/external/user/status")
    [ "$status" = 200 ] || { echo "bench: /user/status answered $status" >&2; exit 1; }
}

url_path=/api/v2/external/user/status

start_lyceumd log
log_port=$port log_key=$key log_pid=${lyceumd_pid##* }
start_lyceumd quiet --no-access-log
quiet_port=$port quiet_key=$key
sleep 0.5
rss_start=$(rss_kib "$log_pid")

# --- nginx -------------------------------------------------------------------------------
nport=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$nport;
        location / {
            default_type application/json;
            return 200 '{"user_id":"4f9c2a56-0000-4000-8000-000000000000","org_id":"9d1e7b3c-0000-4000-8000-000000000000","email":"bench@example.com","full_name":null,"created_at":"2025-01-01T00:00:00.000000+00:00","is_active":true,"active_api_keys_count":1,"credit_balance":0.0,"status":"authenticated"}';
        }
    }
}
EOF
nginx -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" -p "$work/nginx" &
nginx_pid=$!
wait_up "http://127.0.0.1:$nport/" "$nginx_pid"

# --- the load ----------------------------------------------------------------------------
# This machine's speed drifts from one ten seconds to the next, so the three servers are loaded
# in turn, round after round, and each figure is the median over the rounds.
: >"$work/results"
r=1
while [ "$r" -le "$rounds" ]; do
    key=$log_key
    echo "log $(load "http://127.0.0.1:$log_port$url_path")" >>"$work/results"
    key=$quiet_key
    echo "quiet $(load "http://127.0.0.1:$quiet_port$url_path")" >>"$work/results"
    echo "nginx $(load "http://127.0.0.1:$nport$url_path")" >>"$work/results"
    r=$((r + 1))
done
rss_after=$(rss_kib "$log_pid")
log_lines=$(grep -c ' http GET ' "$work/log.log" || true)

median() { # NAME FIELD (1 req/s, 2 p99, 3 non-2xx; non-2xx is summed)
    awk -v n="$1" -v f="$2" '$1 == n { v[++c] = $(f + 1); s += $(f + 1) }
        END {
            if (f == 3) { print s; exit }
            for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            print (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
        }' "$work/results"
}
ly_rps=$(median log 1) ly_p99=$(median log 2) ly_bad=$(median log 3)
lq_rps=$(median quiet 1) lq_p99=$(median quiet 2) lq_bad=$(median quiet 3)
ng_rps=$(median nginx 1) ng_p99=$(median nginx 2) ng_bad=$(median nginx 3)

# --- report ------------------------------------------------------------------------------
echo "wrk -t$wthreads -c$conns -d$dur, GET $url_path with an API key, on $(nproc) CPUs;"
echo "medians of $rounds rounds, each loading the three servers in turn"
printf '%-28s %9.0f req/s   p99 %7.2f ms   non-2xx %s\n' \
    "lyceumd (access log on)" "$ly_rps" "$ly_p99" "$ly_bad" \
    "lyceumd (--no-access-log)" "$lq_rps" "$lq_p99" "$lq_bad" \
    "nginx (fixed JSON)" "$ng_rps" "$ng_p99" "$ng_bad"
awk -v a="$ly_rps" -v b="$lq_rps" -v n="$ng_rps" 'BEGIN {
    printf "ratio lyceumd/nginx: %.2f (access log on), %.2f (off)\n", a / n, b / n }'
awk -v s="$rss_start" -v e="$rss_after" 'BEGIN {
    printf "lyceumd VmRSS: %.1f MiB after start-up, %.1f MiB after the load\n", s / 1024, e / 1024 }'
echo "access-log lines written by the server with the log on: $log_lines"
awk -v a="$ly_rps" -v n="$ng_rps" -v p="$ly_p99" 'BEGIN {
    if (a < 0.5 * n || p > 10) print "note: below the target (0.5x nginx, p99 <= 10 ms)" }'
