#!/bin/sh
# Fails when an arrow points up (docs/DESIGN.md, "Layers"): each directory of src/ may include
# only the layers below it. Run by `make test`; run it by hand as `sh scripts/check-layers.sh`.
#
#   core                      includes core only
#   store, exec, http         core and themselves (store: no json_t in its headers)
#   domain (auth billing orgs secrets storage runs inference batch metrics logs admin)
#                             core, store, exec and each other; never http or api
#   api                       everything but main; never store (it goes through the domain)
#   main.c                    api, the domain and core; of store only store/db.h (store_open)
set -eu
cd "$(dirname "$0")/.."

DOMAIN="auth billing orgs secrets storage runs inference batch metrics logs admin"
fail=0

# includes FILE...: every "dir/x.h" include of the files, as "file:line: dir".
includes() {
    grep -Hn '^#include "[a-z_]*/' "$@" 2>/dev/null |
        sed 's|^\([^:]*:[0-9]*\):#include "\([a-z_]*\)/.*|\1: \2|' || true
}

# allow LAYER ALLOWED FILES...: reports every include of a directory not in ALLOWED.
allow() {
    layer=$1 ok=$2
    shift 2
    includes "$@" | while read -r where dir; do
        case " $ok " in
        *" $dir "*) ;;
        *) echo "$where $layer includes $dir/" ;;
        esac
    done
}

check() {
    out=$("$@")
    if [ -n "$out" ]; then
        echo "$out"
        fail=1
    fi
}

check allow core "core" src/core/*.[ch]
check allow store "core store" src/store/*.[ch]
check allow exec "core exec" src/exec/*.[ch]
check allow http "core http" src/http/*.[ch]
for d in $DOMAIN; do
    [ -d "src/$d" ] || continue
    check allow "$d (domain)" "core store exec $DOMAIN" src/"$d"/*.[ch]
done
check allow api "core exec http api $DOMAIN" src/api/*.[ch]
check allow main.c "core api $DOMAIN store" src/main.c
# main.c opens the store and nothing more of it.
out=$(grep -n '^#include "store/' src/main.c | grep -v '"store/db.h"' || true)
if [ -n "$out" ]; then
    echo "$out" | sed 's|^|src/main.c:|; s|$| (main.c may include only store/db.h of the store)|'
    fail=1
fi
# A directory src/ gains must be placed in a layer here first.
for d in src/*/; do
    d=$(basename "$d")
    case " core store exec http api $DOMAIN " in
    *" $d "*) ;;
    *) echo "src/$d: not in any layer of scripts/check-layers.sh"; fail=1 ;;
    esac
done
# Rows the store returns are typed structs: no JSON in its interface.
out=$(grep -n 'json_t' src/store/*.h || true)
if [ -n "$out" ]; then
    echo "$out" | sed 's|$|  (json_t in a store header)|'
    fail=1
fi

if [ $fail = 0 ]; then
    echo "layers: every include points down"
fi
exit $fail
