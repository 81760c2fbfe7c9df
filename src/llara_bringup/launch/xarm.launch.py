"""The 'xarm' graph of llara_bringup.graphs, for `ros2 launch llara_bringup xarm.launch.py`.

Without a ROS 2 `launch` install run the same graph with
`python -m llara_bringup.launch xarm.launch.py [name:=value ...]`.
"""
GRAPH = 'xarm.launch.py'


def generate_launch_description():
    """Build the LaunchDescription from the graph's one declaration."""
    from llara_bringup.launch_description import build

    return build(GRAPH)
