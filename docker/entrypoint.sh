#!/usr/bin/env bash
# Sources ROS 2 Jazzy and the workspace (env.sh), then runs the command.
set -e
source /opt/ros/jazzy/setup.bash
source /ws/env.sh
exec "$@"
