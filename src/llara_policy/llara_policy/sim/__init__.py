"""pybullet digital twin of the xArm table set-up, speaking VIMA-Bench's task language."""
