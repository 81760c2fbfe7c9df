#!/usr/bin/env bash
# What `make test` runs after setup: lint, every package's tests through `colcon test`
# (as users run them), the cross-package tests in tests/, then one closing line with
# the totals. Exits non-zero if any stage fails.
set -o pipefail  # not -u: install/setup.bash reads unset variables
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck disable=SC1091
source env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
status=0
stage() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stage "VIMA-Bench (installed from ../shared/vimabench/ when the archive is there)"
bash tools/install_vima.sh --if-available || status=1

stage "ruff (style)"
ruff check src tests tools || status=1

stage "colcon test (every package's tests)"
rm -f build/*/pytest.xml build/tests-pytest.xml
colcon test --event-handlers console_direct+ --return-code-on-test-failure \
  --pytest-args -q -p no:cacheprovider || status=1

stage "pytest tests/ (cross-package and end-to-end)"
python -m pytest tests -q -p no:cacheprovider --junitxml=build/tests-pytest.xml || status=1

stage "summary"
python tools/junit_summary.py build/*/pytest.xml build/tests-pytest.xml || status=1
if [[ $status -ne 0 ]]; then echo "make test: FAILED (see the stages above)"; fi
exit $status
