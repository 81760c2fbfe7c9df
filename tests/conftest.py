"""Shared settings for the cross-package tests: DDS stays on loopback."""
import os

# The developers' guide requires loopback-only discovery everywhere (env.sh sets it
# too; this covers a bare `pytest tests` run).
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
