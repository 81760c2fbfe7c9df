# Source me (bash/zsh): `source env.sh`. Activates .venv, makes the ROS 2 wheels'
# libraries loadable, keeps DDS traffic on loopback, loads the fast-discovery Fast
# DDS profile and sources install/setup.bash. Pass --no-install to skip the last
# step (used while building).
_llara_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
if [ ! -f "$_llara_root/.venv/bin/activate" ]; then
  echo "env.sh: $_llara_root/.venv does not exist yet; run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi
. "$_llara_root/.venv/bin/activate"
case "$(cat "$VIRTUAL_ENV/.llara-mode" 2>/dev/null)" in
  wheels*)
    # Same effect as the ros_wheels_bootstrapper .pth re-exec, without the re-exec.
    _llara_ld="$VIRTUAL_ENV/lib"
    for _llara_d in "$VIRTUAL_ENV"/lib/python3*/site-packages/ros_*.libs; do
      [ -d "$_llara_d" ] && _llara_ld="$_llara_ld:$_llara_d"
    done
    export LD_LIBRARY_PATH="$_llara_ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
    case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
      export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
    case ":${CMAKE_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
      export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;; esac
    unset _llara_ld _llara_d
    ;;
esac
# DDS discovery stays on loopback (ROS_LOCALHOST_ONLY is ignored by kilted).
# Multi-machine robots set LLARA_DISCOVERY_RANGE=SUBNET before sourcing.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${LLARA_DISCOVERY_RANGE:-LOCALHOST}"
export FASTDDS_DEFAULT_PROFILES_FILE="$_llara_root/tools/fastdds_profile.xml"
export HF_HUB_OFFLINE=1
if [ "${1:-}" != "--no-install" ] && [ -f "$_llara_root/install/setup.bash" ]; then
  . "$_llara_root/install/setup.bash"
fi
unset _llara_root
