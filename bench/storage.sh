#!/bin/sh
# Storage throughput: a 1 GiB object through lyceumd's S3 endpoint (PUT and GET, with Debian's
# AWS CLI, and with curl as a single signed stream) and through the file API (curl), against
# `cp` of the same file on the same disk.
#
#   sh bench/storage.sh [LYCEUMD_BINARY]        (default build/lyceumd)
#
# Starts `lyceumd serve` on a free loopback port with a fresh data directory under
# BENCH_DIR (default $TMPDIR or /tmp: the file, the copies and the bucket share one disk),
# makes a user, an API key and temporary S3 credentials, writes BENCH_BYTES (default 1 GiB) of
# random data, and times each transfer up to its data being on disk (each one, cp too, ends
# with sync; the page cache is not dropped). It prints seconds and MiB/s of each, the ratio to cp and the CPU time
# lyceumd spent on it (the AWS CLI and curl run on the same cores: on a small machine the
# client's own hashing and writing weigh in), then removes everything it made, however it
# exits.
set -eu

bin=${1:-build/lyceumd}
bytes=${BENCH_BYTES:-1073741824}
base=${BENCH_DIR:-${TMPDIR:-/tmp}}

for tool in curl /usr/bin/aws python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is not installed" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "bench: $bin is not built (make \$(B)/lyceumd)" >&2; exit 2; }
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac

work=$(mktemp -d "$base/lyceumd-storage-bench.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --data "$work/data" user add bench@lyceumd.local --password-stdin >/dev/null 2>&1 <<PW
bench-password-123
PW
key=$("$bin" --data "$work/data" key add bench@lyceumd.local bench 2>/dev/null)
"$bin" serve --listen "127.0.0.1:$port" --data "$work/data" --no-access-log \
    >"$work/server.log" 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
i=0
until curl -sf "$url/health" >/dev/null; do
    i=$((i + 1)); [ $i -gt 200 ] && { cat "$work/server.log"; exit 1; }; sleep 0.05
done
creds=$(curl -sf -X POST -H "Authorization: Bearer $key" "$url/api/v2/external/storage/credentials")
field() { printf '%s' "$creds" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
export AWS_ACCESS_KEY_ID="$(field access_key)" AWS_SECRET_ACCESS_KEY="$(field secret_key)"
export AWS_SESSION_TOKEN="$(field session_token)" AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=
printf '[default]\ns3 =\n    addressing_style = path\n' >"$AWS_CONFIG_FILE"
bucket=$(field bucket_name)

python3 - "$work/src.bin" "$bytes" <<'PY'
import os, sys
block = os.urandom(1 << 20)
n = int(sys.argv[2])
with open(sys.argv[1], "wb") as f:
    for i in range(n >> 20):
        f.write(block[:-8] + i.to_bytes(8, "little"))
    f.write(block[: n & ((1 << 20) - 1)])
PY

now() { python3 -c 'import time; print(time.time())'; }
# CPU seconds lyceumd has used so far (user + system).
cpu() { python3 -c "import os; f=open('/proc/$pid/stat').read().rsplit(')',1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf('SC_CLK_TCK'))"; }
cp_s=
report() { # name seconds [server cpu seconds]
    python3 - "$1" "$2" "$bytes" "${cp_s:-$2}" "${3:-}" <<'PY'
import sys
name, s, n, cp, c = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
cpu = f"  lyceumd CPU {float(c):5.2f} s" if c else ""
print(f"{name:<34} {s:7.2f} s  {n / s / 2**20:8.1f} MiB/s  {cp / s:5.2f}x cp{cpu}")
PY
}
timed() { # name command...
    name=$1; shift
    sync
    c0=$(cpu); t0=$(now); "$@"; sync; t1=$(now); c1=$(cpu)
    s=$(python3 -c "print($t1 - $t0)")
    report "$name" "$s" "$(python3 -c "print($c1 - $c0)")"
}

echo "storage bench: $bytes bytes, disk of $work"
sync
t0=$(now); cp "$work/src.bin" "$work/cp.bin"; sync; t1=$(now); cp_s=$(python3 -c "print($t1 - $t0)")
report "cp + sync (same disk)" "$cp_s"
rm -f "$work/cp.bin"
timed "S3 PUT (aws s3 cp, multipart)" /usr/bin/aws --endpoint-url "$url" s3 cp --only-show-errors \
    "$work/src.bin" "s3://$bucket/bench.bin"
timed "S3 GET (aws s3 cp, ranged)" /usr/bin/aws --endpoint-url "$url" s3 cp --only-show-errors \
    "s3://$bucket/bench.bin" "$work/get.bin"
cmp "$work/src.bin" "$work/get.bin"; rm -f "$work/get.bin"
sig="aws:amz:us-east-1:s3"
timed "S3 PUT (curl, one signed stream)" curl -sf -o /dev/null --aws-sigv4 "$sig" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-security-token: $AWS_SESSION_TOKEN" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$work/src.bin" "$url/$bucket/curl.bin"
timed "S3 GET (curl, one signed stream)" curl -sf -o "$work/get.bin" --aws-sigv4 "$sig" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-security-token: $AWS_SESSION_TOKEN" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$url/$bucket/curl.bin"
cmp "$work/src.bin" "$work/get.bin"; rm -f "$work/get.bin"
timed "S3 GET (curl, to /dev/null)" curl -sf -o /dev/null --aws-sigv4 "$sig" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-security-token: $AWS_SESSION_TOKEN" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$url/$bucket/curl.bin"
timed "file API upload (curl multipart)" curl -sf -o /dev/null -H "Authorization: Bearer $key" \
    -F "file=@$work/src.bin" -F key=api.bin "$url/api/v2/external/storage/upload"
timed "file API download (curl)" curl -sf -o "$work/get.bin" -H "Authorization: Bearer $key" \
    "$url/api/v2/external/storage/download/api.bin"
cmp "$work/src.bin" "$work/get.bin"
echo "lyceumd RSS after: $(grep VmRSS /proc/$pid/status | awk '{print $2 / 1024 " MiB"}')," \
    "peak $(grep VmHWM /proc/$pid/status | awk '{print $2 / 1024 " MiB"}')"
