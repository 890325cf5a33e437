#!/usr/bin/env bash
# Creates the peers' virtual environment (ONNX Runtime and onnx from PyPI; PyTorch from Debian's python3-torch,
# seen through --system-site-packages) at ${TORCHPERF_VENV:-$PWD/target/peers-venv}. Idempotent.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TORCHPERF_VENV:-$PWD/target/peers-venv}"
# Debian's interpreter, so that python3-torch (installed for it) is importable; any python3 otherwise.
python="${TORCHPERF_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo_root/peers/requirements.txt"
"$venv/bin/python" "$repo_root/peers/harness.py" --versions
echo "peers venv ready: $venv (export TORCHPERF_VENV=$venv)"
