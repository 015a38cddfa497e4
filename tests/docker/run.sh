#!/bin/sh
# Builds tests/docker/driver.c with src/exec/docker.c and src/core (AddressSanitizer and
# UndefinedBehaviorSanitizer on) and runs it against a real Docker engine, which
# scripts/dockerd.sh starts when none answers (root and docker.io needed).
#   sh tests/docker/run.sh            every case
#   sh tests/docker/run.sh image      image runs only ("compose": Compose runs only)
# B=<dir> names the build directory (default build-docker). Exits 77 when no engine can run.
set -eu
cd "$(dirname "$0")/../.."
B=${B:-build-docker}
mkdir -p "$B"
if ! why=$(sh scripts/dockerd.sh start); then
    echo "SKIP: $why"
    exit 77
fi
cc -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
    -fno-sanitize-recover=all -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
    -Wno-missing-field-initializers -Isrc -o "$B/docker-driver" \
    tests/docker/driver.c src/exec/docker.c src/core/*.c \
    $(pkg-config --cflags --libs libcurl jansson libcrypto) -lpthread
exec "$B/docker-driver" "$@"
