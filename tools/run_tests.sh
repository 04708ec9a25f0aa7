#!/usr/bin/env bash
# Run the test suite: installs first when needed (./setup.sh --no-demo, idempotent, quiet),
# then pytest with the project defaults (slow tests excluded; add `-m slow` for them).
#
#   tools/run_tests.sh                       the default suite
#   tools/run_tests.sh -m slow               only the slow tests
#   tools/run_tests.sh tests/test_assets.py  any pytest arguments
#
# A run that collects no tests is a failure (pytest exit code 5 is passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
./setup.sh --no-demo --quiet
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest "$@"
