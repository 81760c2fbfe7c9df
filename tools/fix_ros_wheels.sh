#!/usr/bin/env bash
# Rewrites the manylinux build interpreter paths that the ROS wheels hard-code in
# their CMake export files (e.g. /opt/python/cp311-cp311/include/python3.11) to this
# venv's Python include dir and site-packages. Without it, colcon build of any
# message package fails with 'includes non-existent path'. Idempotent (about 0.2 s);
# must run again after any ROS wheel is (re)installed, which tools/setup.sh does.
set -euo pipefail
: "${VIRTUAL_ENV:?activate the workspace venv first}"
py_include=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [[ ! -f "$py_include/Python.h" ]]; then
  echo "fix_ros_wheels: $py_include/Python.h is missing; install the Python headers (e.g. python3-dev)" >&2
  exit 1
fi
count=0
while IFS= read -r -d '' f; do
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_include}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages#${site}#g" "$f"
  count=$((count + 1))
done < <(grep -rlZ --include='*.cmake' -E '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VIRTUAL_ENV/share" 2>/dev/null || true)
echo "fix_ros_wheels: rewrote $count CMake export file(s)"
