#!/usr/bin/env bash
# Builds the committed BPF object from c/wgxdp.bpf.c; `--check` rebuilds into a temporary
# file and fails if the committed object differs (CI runs that). The object is embedded by
# the `ebpf` crate, so `cargo build` itself never needs clang.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
out=wgxdp.bpf.o
build() {
    # Relative paths and no DWARF keep the object byte-for-byte reproducible across checkouts;
    # BTF stays, aya needs it for the map definitions.
    clang -O2 -g -Wall -Werror -target bpf -mcpu=v3 \
        -I/usr/include/x86_64-linux-gnu -Ic -fdebug-prefix-map="$PWD"=. \
        -c c/wgxdp.bpf.c -o "$1"
    llvm-strip -g "$1"
}
if [ "${1:-}" = "--check" ]; then
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    build "$tmp"
    if ! cmp -s "$tmp" "$out"; then
        echo "ebpf/$out is stale: run ebpf/build.sh and commit the object" >&2
        exit 1
    fi
    echo "ebpf/$out matches its source"
else
    build "$out"
    echo "built ebpf/$out ($(stat -c %s "$out") bytes)"
fi
