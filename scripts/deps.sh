#!/bin/sh
# Installs the Debian packages lyceumd needs, when any is missing. Run as root on Debian 12.
#   scripts/deps.sh serve    what building and serving need (make run): the compiler, the
#                            libraries, and the tools runs use (bubblewrap, slirp4netns, venv)
#   scripts/deps.sh [test]   that and what the tests and benchmarks need (make test): the test
#                            clients and the services they drive (Docker, Slurm, nginx,
#                            Prometheus, the AWS CLI, ...)
#   scripts/deps.sh --list serve|test    prints the packages of a set, one a line
# Idempotent and quiet when everything is there already.
set -eu

SERVE="build-essential pkg-config
libmicrohttpd-dev libjansson-dev libsqlite3-dev libjwt-dev libargon2-dev liboath-dev
libssl-dev libacl1-dev libarchive-dev libsystemd-dev libseccomp-dev libcurl4-openssl-dev libyaml-dev libhttp-parser-dev
bubblewrap slirp4netns python3 python3-venv nodejs npm"

TEST="$SERVE clang libclang-rt-14-dev clang-format libcmocka-dev oathtool curl
python3-pytest python3-requests python3-websocket wrk nginx-light docker.io docker-compose docker-registry
acl apache2-utils slurmctld slurmd slurm-client munge slurmrestd slurm-wlm-jwt-plugin
slurm-wlm-basic-plugins busybox-static awscli prometheus faketime lintian help2man chromium"

list=0
if [ "${1:-}" = --list ]; then
    list=1
    shift
fi
case "${1:-test}" in
serve) PKGS=$SERVE ;;
test) PKGS=$TEST ;;
*) echo "usage: $0 [--list] [serve|test]" >&2; exit 2 ;;
esac
if [ $list = 1 ]; then
    for p in $PKGS; do echo "$p"; done
    exit 0
fi

missing=""
for p in $PKGS; do
    # npm (the web console's build) may come with a nodejs that is not Debian's.
    [ "$p" = npm ] && command -v npm >/dev/null && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "lyceumd: missing Debian packages:$missing" >&2
    echo "lyceumd: run as root, or: sudo apt-get install$missing" >&2
    exit 1
fi
echo "lyceumd: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
