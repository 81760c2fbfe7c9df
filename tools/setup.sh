#!/usr/bin/env bash
# One-command workspace setup (what `make setup` runs). Idempotent:
#   1. creates .venv (from the system python, or with system site packages when a
#      system ROS 2 is sourced),
#   2. installs the pinned dependencies from tools/requirements/ (skipped when the
#      requirement files and the mode are unchanged since the last install),
#   3. re-applies the ROS wheels' CMake fix-up (wheel mode),
#   4. runs `colcon build` when anything under src/ (or colcon.meta) changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv="$root/.venv"
req="$root/tools/requirements"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- 1. mode and interpreter ------------------------------------------------------
# A system ROS 2 counts as sourced when ROS_DISTRO names an install under /opt/ros
# that is on AMENT_PREFIX_PATH (what /opt/ros/<distro>/setup.bash does).
ros_root=${LLARA_SYSTEM_ROS_ROOT:-/opt/ros}
if [[ -n "${ROS_DISTRO:-}" && -d "$ros_root/${ROS_DISTRO}" && ":${AMENT_PREFIX_PATH:-}:" == *":$ros_root/${ROS_DISTRO}:"* ]]; then
  mode="system-${ROS_DISTRO}"
  python_bin=${LLARA_PYTHON:-/usr/bin/python3}
  say "using the sourced system ROS 2 '${ROS_DISTRO}' (venv with system site packages; no ROS wheels)"
else
  mode=wheels
  python_bin=${LLARA_PYTHON:-python3}
  say "no system ROS 2 sourced: using ROS 2 kilted wheels from PyPI in .venv"
fi
if [[ "${1:-}" == --print-mode ]]; then echo "$mode"; exit 0; fi
py_version=$("$python_bin" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ $mode == wheels && $py_version != 3.11 ]]; then
  echo "setup: the ROS 2 wheel set is tested with Python 3.11, found $py_version at $python_bin;" \
       "set LLARA_PYTHON to a Python 3.11 interpreter or source a system ROS 2" >&2
  exit 1
fi

if [[ -x "$venv/bin/python" && "$(cat "$venv/.llara-mode" 2>/dev/null)" != "$mode $py_version" ]]; then
  say "existing .venv was made for '$(cat "$venv/.llara-mode" 2>/dev/null || echo unknown)'; recreating it"
  rm -rf "$venv" "$root/build" "$root/install"
fi
if [[ ! -x "$venv/bin/python" ]]; then
  say "creating .venv with $python_bin (Python $py_version)"
  if [[ $mode == wheels ]]; then "$python_bin" -m venv "$venv"; else "$python_bin" -m venv --system-site-packages "$venv"; fi
  echo "$mode $py_version" > "$venv/.llara-mode"
  touch "$venv/COLCON_IGNORE"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

# --- 2. dependencies --------------------------------------------------------------
if [[ $mode == wheels ]]; then
  req_args=(-r "$req/ros-wheels.txt" -r "$req/python.txt" -r "$req/dev.txt" -c "$req/constraints.txt")
  req_files=("$req/ros-wheels.txt" "$req/python.txt" "$req/dev.txt" "$req/constraints.txt")
else
  # A system ROS 2 brings its own numpy 1.x (cv_bridge is built against it); keep it.
  grep -v -E '^(numpy|opencv-python-headless|setuptools)[=<>]' "$req/python.txt" > "$venv/.python-system.txt"
  printf 'numpy<2\nopencv-python-headless<4.11\n' >> "$venv/.python-system.txt"
  req_args=(-r "$venv/.python-system.txt" -r "$req/dev.txt")
  req_files=("$venv/.python-system.txt" "$req/dev.txt")
fi
want=$( (echo "$mode $py_version"; cat "${req_files[@]}") | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$venv/.llara-deps" 2>/dev/null)" == "$want" ]]; then
  say "dependencies up to date (skipping pip)"
else
  say "installing pinned dependencies (first run: about 2 minutes)"
  start=$SECONDS
  python -m pip install --disable-pip-version-check --quiet "${req_args[@]}" 2>&1 | { grep -v -E "is ignored: it is neither" || true; }
  test "${PIPESTATUS[0]}" -eq 0
  echo "$want" > "$venv/.llara-deps"
  say "dependencies installed in $((SECONDS - start)) s"
fi

# --- 3. ROS wheels' CMake fix-up ----------------------------------------------------
if [[ $mode == wheels ]]; then
  bash "$root/tools/fix_ros_wheels.sh" | sed 's/^/[setup] /'
fi

# --- 4. colcon build ----------------------------------------------------------------
stamp="$root/install/.llara-build-stamp"
# Python sources are symlink-installed, so only files colcon copies or generates from
# (package metadata, interfaces, launch/config data) need a rebuild when they change.
changed=$(find src colcon.meta "$venv/.llara-deps" -newer "$stamp" \( -name package.xml \
  -o -name setup.py -o -name setup.cfg -o -name CMakeLists.txt -o -name '*.msg' -o -name '*.srv' \
  -o -name '*.action' -o -path '*/resource/*' -o -path '*/launch/*' -o -path '*/config/*' \
  -o -name colcon.meta -o -name .llara-deps \) -print -quit 2>/dev/null || true)
if [[ -f "$stamp" && -z "$changed" ]]; then
  say "workspace build up to date (skipping colcon build)"
else
  say "colcon build"
  start=$SECONDS
  (
    # shellcheck disable=SC1091
    . "$root/env.sh" --no-install
    colcon build --symlink-install --event-handlers console_cohesion- summary+ status- 2>&1 \
      | grep -v -E "AMENT_PREFIX_PATH doesn't contain any 'local_setup|SetuptoolsDeprecationWarning|setup.py install is deprecated"
    test "${PIPESTATUS[0]}" -eq 0
  )
  touch "$stamp"
  say "colcon build finished in $((SECONDS - start)) s"
fi
say "done. Use it in a shell with:  source env.sh"
