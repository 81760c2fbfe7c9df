#!/usr/bin/env bash
# What `make bench` runs: every benchmark script in tests/bench/, one after another.
# Each prints its measurements next to a baseline measured in the same run.
set -o pipefail  # not -u: install/setup.bash reads unset variables
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck disable=SC1091
source env.sh
status=0
for script in tests/bench/bench_*.py; do
  [[ -e $script ]] || continue
  printf '\n\033[1m== %s\033[0m\n' "$script"
  python "$script" || status=1
done
exit $status
