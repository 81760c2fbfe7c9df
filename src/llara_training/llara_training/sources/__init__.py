"""Episode sources: the embedded sim's oracle, VIMA-Data folders, recorded rosbag2 sessions."""
