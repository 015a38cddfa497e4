#!/bin/sh
# Installs the Debian packages that lyceumd's build, tests and benchmarks need, when any is
# missing. Run as root on Debian 12 (make run and make test call it first). Idempotent and
# quiet when everything is there already.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev clang-format
libmicrohttpd-dev libjansson-dev libsqlite3-dev libjwt-dev libargon2-dev liboath-dev
libssl-dev libcmocka-dev libacl1-dev libseccomp-dev slirp4netns oathtool curl python3 python3-pytest python3-requests python3-websocket
wrk nginx-light libcurl4-openssl-dev libhttp-parser-dev bubblewrap python3-venv docker.io docker-compose
libyaml-dev docker-registry apache2-utils
slurmctld slurmd slurm-client munge slurmrestd slurm-wlm-jwt-plugin slurm-wlm-basic-plugins
busybox-static awscli prometheus faketime"

missing=""
for p in $PKGS; do
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
