#!/bin/sh
# Starts (or stops) a Docker engine for the tests, and imports the test image they use.
#   scripts/dockerd.sh start    dockerd with user namespaces remapped (--userns-remap=default:
#                               uid 0 in a container is an unprivileged uid of the host) and no
#                               bridge network (containers get --network none), unless one
#                               answers already with user namespaces remapped; one that answers
#                               without them is stopped and started again with them. Then the
#                               image lyceumd-test/busybox:1 (a busybox-static rootfs) if missing
#                               (a remapped engine has an image store of its own).
#   scripts/dockerd.sh stop     stops a dockerd this script started.
# Exits non-zero with one line saying why when no engine can run here.
set -u
SOCK=/var/run/docker.sock
PIDFILE=/tmp/lyceumd-dockerd.pid
LOG=/tmp/lyceumd-dockerd.log

ping() { curl -s --max-time 2 --unix-socket "$SOCK" http://localhost/_ping 2>/dev/null | grep -q OK; }
remapped() {
    curl -s --max-time 5 --unix-socket "$SOCK" http://localhost/info 2>/dev/null |
        grep -q '"name=userns'
}

case "${1:-start}" in
stop)
    [ -s "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null && echo "dockerd stopped"
    rm -f "$PIDFILE"
    exit 0
    ;;
start) ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

if ping && ! remapped; then
    # An engine without user namespaces: containers' root would be the host's. Stop it (by the
    # pid it wrote) and start one that remaps them.
    pid=$(cat "$PIDFILE" 2>/dev/null || cat /var/run/docker.pid 2>/dev/null)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null ||
        { echo "a Docker engine without --userns-remap answers at $SOCK and cannot be stopped"; exit 1; }
    i=0
    while ping || kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 150 ] && { echo "the Docker engine without --userns-remap did not stop within 30 s"; exit 1; }
        sleep 0.2
    done
    rm -f "$PIDFILE"
fi

if ! ping; then
    command -v dockerd >/dev/null || { echo "dockerd is not installed (apt-get install docker.io)"; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "dockerd needs root"; exit 1; }
    command -v containerd >/dev/null || { echo "containerd is not installed"; exit 1; }
    setsid dockerd --userns-remap=default --bridge=none --iptables=false --ip-masq=false \
        --host "unix://$SOCK" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    i=0
    until ping; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
            echo "dockerd did not answer within 20 s: $(tail -n 3 "$LOG" | tr '\n' ' ')"
            exit 1
        fi
        sleep 0.2
    done
    remapped || { echo "dockerd started without user namespaces remapped: $(tail -n 3 "$LOG" | tr '\n' ' ')"; exit 1; }
fi

if ! docker image inspect lyceumd-test/busybox:1 >/dev/null 2>&1; then
    BB=$(command -v busybox || echo /bin/busybox)
    [ -x "$BB" ] || { echo "busybox is not installed (apt-get install busybox-static)"; exit 1; }
    ROOT=$(mktemp -d)
    mkdir -p "$ROOT/bin" "$ROOT/tmp" "$ROOT/etc"
    chmod 1777 "$ROOT/tmp"
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
