# Peers of the Olympics (ONNX Runtime and PyTorch under the same referee; docs/peers.md), meant to be
# `source`d from the repository root before `cargo test`:
#   source .ci/peers.sh
# Idempotent. Installs Debian's python3-torch (CPU build; about 150 MB of packages, measured at 60 s on
# the reference machine, so the PyTorch rows run in CI too) and python3-venv, then runs peers/setup.sh
# (venv at ${TORCHPERF_VENV:-$PWD/target/peers-venv} with --system-site-packages; onnxruntime, onnx from
# PyPI), and exports:
#   TORCHPERF_VENV           the venv the peers tests and `cargo xtask validate --module peers` use
#   TORCHPERF_REQUIRE_PEERS  1 once the venv works: the peers tests then fail instead of skipping
# On any failure it says why and exports nothing more (the tests skip and the claims are SKIPPED with the
# install command); it never exits the calling shell.

_peers_setup() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    export TORCHPERF_VENV="${TORCHPERF_VENV:-$root/target/peers-venv}"
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        if ! /usr/bin/python3 -c "import torch" >/dev/null 2>&1 || ! /usr/bin/python3 -c "import ensurepip" >/dev/null 2>&1; then
            echo "peers: installing python3-torch python3-venv (Debian)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch python3-venv >/dev/null \
                || echo "peers: apt-get install python3-torch failed (PyTorch rows will be SKIPPED)"
        fi
    fi
    if bash "$root/peers/setup.sh"; then
        export TORCHPERF_REQUIRE_PEERS=1
    else
        echo "peers: setup failed; the peers tests skip and the peers claims are SKIPPED"
        return 1
    fi
}
_peers_setup || true
unset -f _peers_setup
