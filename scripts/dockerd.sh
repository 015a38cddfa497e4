#!/bin/sh
# Starts (or stops) a Docker engine for the tests, and imports the test image they use.
#   scripts/dockerd.sh start    dockerd with no bridge network (containers get --network none
#                               or host), unless one already answers; then the image
#                               lyceumd-test/busybox:1 (a busybox-static rootfs) if missing.
#   scripts/dockerd.sh stop     stops a dockerd this script started.
# Exits non-zero with one line saying why when no engine can run here.
set -u
SOCK=/var/run/docker.sock
PIDFILE=/tmp/lyceumd-dockerd.pid
LOG=/tmp/lyceumd-dockerd.log

ping() { curl -s --max-time 2 --unix-socket "$SOCK" http://localhost/_ping 2>/dev/null | grep -q OK; }

case "${1:-start}" in
stop)
    [ -s "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null && echo "dockerd stopped"
    rm -f "$PIDFILE"
    exit 0
    ;;
start) ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

if ! ping; then
    command -v dockerd >/dev/null || { echo "dockerd is not installed (apt-get install docker.io)"; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "dockerd needs root"; exit 1; }
    command -v containerd >/dev/null || { echo "containerd is not installed"; exit 1; }
    setsid dockerd --bridge=none --iptables=false --ip-masq=false --host "unix://$SOCK" \
        >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    i=0
    until ping; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "dockerd did not answer within 20 s: $(tail -n 3 "$LOG" | tr '\n' ' ')"
            exit 1
        fi
        sleep 0.2
    done
fi

if ! docker image inspect lyceumd-test/busybox:1 >/dev/null 2>&1; then
    BB=$(command -v busybox || echo /bin/busybox)
    [ -x "$BB" ] || { echo "busybox is not installed (apt-get install busybox-static)"; exit 1; }
    ROOT=$(mktemp -d)
    mkdir -p "$ROOT/bin" "$ROOT/tmp" "$ROOT/etc"
    cp "$BB" "$ROOT/bin/busybox"
    for a in $("$BB" --list); do
        [ "$a" = busybox ] || ln -s busybox "$ROOT/bin/$a"
    done
    echo "root:x:0:0:root:/:/bin/sh" >"$ROOT/etc/passwd"
    tar -C "$ROOT" -c . | docker import -c 'ENV PATH=/bin' - lyceumd-test/busybox:1 >/dev/null ||
        { rm -rf "$ROOT"; echo "cannot import the test image"; exit 1; }
    rm -rf "$ROOT"
fi
echo "docker engine ready"
