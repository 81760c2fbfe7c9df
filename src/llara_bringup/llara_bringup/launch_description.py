"""`ros2 launch` side of a graph: a LaunchDescription built from `graphs.py`'s declaration.

`launch` and `launch_ros` are imported inside `build()` only, so the declaration and this module
import on machines without them (ours); there the embedded launcher (`llara_bringup.launch`)
starts the same resolved nodes. Node parameters are resolved from the launch arguments by
`graphs.resolve` in an OpaqueFunction, the same call the embedded launcher makes. A node enabled
by a bool argument (`record:=true` for recorder_node) gets `IfCondition(LaunchConfiguration(
argument))`, so `launch` decides whether it starts, as in any ROS 2 launch file.
"""
from llara_bringup.graphs import Graph, config_path, graph_for, resolve


def node_actions(graph: Graph, values: dict) -> list:
    """launch_ros Node actions for the resolved graph (launch_ros imported here)."""
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    params_file = str(config_path(graph))
    return [Node(package=node.package, executable=node.executable,
                 name=node.name if node.renamed else None,
                 parameters=[params_file, node.parameters], remappings=list(node.remappings),
                 output='screen', emulate_tty=True,
                 **({'condition': IfCondition(LaunchConfiguration(node.enabled_by))}
                    if node.enabled_by else {}))
            for node in resolve(graph, values, include_disabled=True)]


def build(launch_file: str):
    """Return the LaunchDescription of `launch_file` (e.g. 'sim.launch.py')."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    graph = graph_for(launch_file)

    def nodes(context):
        values = {arg.name: LaunchConfiguration(arg.name).perform(context)
                  for arg in graph.arguments}
        return node_actions(graph, values)

    return LaunchDescription(
        [DeclareLaunchArgument(arg.name, default_value=arg.default, description=arg.description)
         for arg in graph.arguments] + [OpaqueFunction(function=nodes)])
