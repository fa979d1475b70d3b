# Shared by testbed/test, testbed/demo and the bench scripts: packages, PATH under sudo, cargo
# discovery, the topology.
# shellcheck shell=bash

# `ip` lives in /usr/sbin, which a non-login shell or a reset sudo environment may lack.
export PATH="$PATH:/usr/sbin:/sbin"

step() { printf '\n==> %s\n' "$*"; }

# sudo resets PATH, hiding a rustup toolchain installed in the invoking user's home.
find_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -n "${SUDO_USER:-}" ]; then
        local user_home
        user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        if [ -x "$user_home/.cargo/bin/cargo" ]; then
            export PATH="$user_home/.cargo/bin:$PATH"
            export CARGO_HOME="${CARGO_HOME:-$user_home/.cargo}"
            export RUSTUP_HOME="${RUSTUP_HOME:-$user_home/.rustup}"
        fi
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo is not on PATH (under sudo, try: sudo env \"PATH=\$PATH\" $0)" >&2
        exit 1
    fi
}

# clang/llvm/libbpf/libelf/m4/pkg-config build the eBPF programs; iproute2, wireguard-go,
# wireguard-tools, iperf3, ethtool and ping are the testbed's tools; python3 replays captured
# packets (cli/tests/scripts/replay.py) and writes the benchmarks' peer files; nftables is
# the firewall the hook tests' PostUp rules name the gateway's interface in (cli/tests/interface.rs);
# iptables runs the egress tests' fixture hooks, tcpdump their LAN capture, conntrack flushes
# connection tracking under them (cli/tests/egress.rs);
# procps gives sysctl (forwarding, in `up` and the tests); systemd gives systemd-analyze and
# man-db `man`, with which packaging/test-deb verifies the unit the package installs (its
# Documentation= included); systemd need not be running. xdp-tools gives xdpdump, the capture
# recipe of docs/operations.md (cli/tests/capture.rs). etcd-server and etcd-client: the
# cluster tests' peer store (cli/tests/cluster.rs); their service is never started.
TESTBED_PACKAGES=(build-essential clang llvm libelf-dev zlib1g-dev pkg-config m4 libbpf-dev
                  iproute2 wireguard-go wireguard-tools iperf3 ethtool iputils-ping util-linux
                  python3 nftables iptables tcpdump procps conntrack systemd man-db xdp-tools
                  etcd-server etcd-client)

# boringtun (a real peer for the egress tests and the benchmarks): cargo-installed into
# target/tools once (a few minutes), where the tests and scripts look for it first.
install_boringtun() {
    if command -v boringtun-cli >/dev/null 2>&1 || [ -x target/tools/bin/boringtun-cli ]; then
        return 0
    fi
    step "installing boringtun-cli (cargo install --root target/tools)"
    cargo install -q --locked --root target/tools boringtun-cli
}

# cargo-deb (packaging/build-deb): cargo-installed into target/tools once (a minute or two),
# at a fixed version: CI builds its package with the dev profile, which later versions plan
# to refuse.
CARGO_DEB_VERSION=3.8.0
install_cargo_deb() {
    export PATH="$PWD/target/tools/bin:$PATH"
    if [ "$(cargo-deb --version 2>/dev/null)" = "cargo-deb $CARGO_DEB_VERSION" ]; then
        return 0
    fi
    step "installing cargo-deb $CARGO_DEB_VERSION (cargo install --root target/tools)"
    cargo install -q --locked --root target/tools --version "$CARGO_DEB_VERSION" cargo-deb
}

# Installs whatever of TESTBED_PACKAGES is missing (idempotent, quiet when nothing is).
install_packages() {
    local missing=() p
    for p in "${TESTBED_PACKAGES[@]}"; do
        # dpkg -s also succeeds for packages removed but not purged; the status word is exact.
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" -eq 0 ]; then
        step "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    else
        echo "warning: not root, cannot install: ${missing[*]} (tests needing them will skip)" >&2
    fi
}

# The demo's and the benchmarks' hosts: testbed's gateway topology (testbed/src/topology.rs),
# built by testbed-topo (`cargo build --release -p testbed`). `topo_create OPTIONS...` sets the
# variables it prints (ns_gw, gw_wan, gw_lan, srv_v4, ...: see testbed/src/bin/testbed-topo.rs),
# as globals: a new one must not take the name of a script's own variable (peers, gen, ns, t).
# The namespaces are named after this script's pid, so `topo_delete`, in the script's trap,
# removes all of them (and ends what runs inside), also after a create interrupted half-way.
TOPO_BIN=$PWD/target/release/testbed-topo
topo_create() {
    local vars
    if [ ! -x "$TOPO_BIN" ]; then
        echo "error: $TOPO_BIN is not built (cargo build --release -p testbed)" >&2
        return 1
    fi
    vars=$("$TOPO_BIN" create --owner $$ "$@") || return 1
    eval "$vars"
}
topo_delete() {
    [ ! -x "$TOPO_BIN" ] || "$TOPO_BIN" delete --owner $$ || true
}
