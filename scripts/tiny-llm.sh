#!/bin/sh
# Prepares a real model server and a real (tiny, generated) model for the inference tests:
# llama.cpp's llama-server built from the source that npm's node-llama-cpp carries, and a
# deterministic random-weight LLaMA GGUF from scripts/gen-tiny-gguf.py. Both are cached outside
# the repository, keyed by the node-llama-cpp version, so the ~10 minute build is paid once per
# machine. Prints the cache directory on its last line. Idempotent.
#
#   LYCEUMD_TINY_CACHE  the cache root (default /var/cache/lyceumd-test, else ~/.cache/...)
set -eu

VER=3.21.1
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${LYCEUMD_TINY_CACHE:-/var/cache/lyceumd-test}
if ! mkdir -p "$ROOT" 2>/dev/null || [ ! -w "$ROOT" ]; then
    ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/lyceumd-test
    mkdir -p "$ROOT"
fi
DIR=$ROOT/node-llama-cpp-$VER
mkdir -p "$DIR"

if [ ! -x "$DIR/llama-server" ]; then
    # One build at a time per machine: a second caller waits for the first.
    exec 9>"$DIR/.lock"
    flock 9
fi
if [ ! -x "$DIR/llama-server" ]; then
    W=$DIR/work
    mkdir -p "$W"
    if [ ! -f "$W/node_modules/node-llama-cpp/llama/gitRelease.bundle" ]; then
        echo "lyceumd: fetching node-llama-cpp@$VER (llama.cpp source)" >&2
        (cd "$W" && npm i -E --omit=optional --no-audit --no-fund --ignore-scripts \
            "node-llama-cpp@$VER" "@node-llama-cpp/linux-x64@$VER" >/dev/null)
    fi
    rm -rf "$W/llama.cpp"
    git -c advice.detachedHead=false clone -q "$W/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$W/llama.cpp"
    echo "lyceumd: building llama-server (about 10 minutes on 2 cores, once per machine)" >&2
    cmake -S "$W/llama.cpp" -B "$W/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_UI=OFF -DGGML_CCACHE=OFF >"$DIR/build.log" 2>&1
    cmake --build "$W/llama.cpp/build" --target llama-server -j"$(nproc)" >>"$DIR/build.log" 2>&1
    cp "$W/node_modules/node-llama-cpp/llama/llama.cpp/models/ggml-vocab-llama-spm.gguf" \
        "$DIR/vocab-llama-spm.gguf" 2>/dev/null ||
        cp "$W/llama.cpp/models/ggml-vocab-llama-spm.gguf" "$DIR/vocab-llama-spm.gguf"
    cp "$W/llama.cpp/build/bin/llama-server" "$DIR/llama-server.tmp"
    mv "$DIR/llama-server.tmp" "$DIR/llama-server"
    rm -rf "$W/llama.cpp/build"
fi

# The model: regenerated when the generator changes (its hash names the file).
SUM=$(sha256sum "$HERE/gen-tiny-gguf.py" | cut -c1-12)
if [ ! -f "$DIR/tiny-$SUM.gguf" ]; then
    python3 "$HERE/gen-tiny-gguf.py" "$DIR/vocab-llama-spm.gguf" "$DIR/tiny-$SUM.gguf.tmp"
    mv "$DIR/tiny-$SUM.gguf.tmp" "$DIR/tiny-$SUM.gguf"
fi
ln -sf "tiny-$SUM.gguf" "$DIR/tiny.gguf"
echo "$DIR"
