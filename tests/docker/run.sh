#!/bin/sh
# Builds tests/docker/driver.c with the Docker executor, src/core, the store and the secrets
# (through the domain's table of what executors need, src/runs/host.c)
# (AddressSanitizer and UndefinedBehaviorSanitizer on) and runs it against a real Docker engine,
# which scripts/dockerd.sh starts when none answers (root and docker.io needed).
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
mkdir -p "$B/gen"
sh scripts/embed-sql.sh "$B/gen/migrations.c" src/store/migrations/*.sql
cc -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
    -fno-sanitize-recover=all -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
    -Wno-missing-field-initializers -Isrc -I"$B/gen" -o "$B/docker-driver" \
    tests/docker/driver.c src/exec/docker.c src/exec/images.c src/exec/compose.c \
    src/exec/compose_file.c src/exec/host.c src/runs/host.c src/core/*.c \
    src/store/*.c src/secrets/*.c src/storage/*.c "$B/gen/migrations.c" \
    $(pkg-config --cflags --libs libcurl jansson libcrypto sqlite3 yaml-0.1 libacl) -lpthread
exec "$B/docker-driver" "$@"
