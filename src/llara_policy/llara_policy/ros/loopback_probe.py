"""DDS loopback self-check: two processes exchange a llara_msgs plan and a service call.

`ros2 run llara_policy loopback_probe` starts a server process and runs the client
against it: a quick check that discovery, the llara_msgs type support and services
work on this machine. `--role server|client` runs one side only (the two-process test
in tests/ runs the pair 20 times in a row). Exit code 0 means every exchange matched.
"""
import argparse
import subprocess
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from llara_msgs.msg import ActionPlan, ActionStep
from llara_msgs.srv import StopExecutor

PLAN_TOPIC = 'probe/plan'
ECHO_TOPIC = 'probe/echo'
STOP_SERVICE = 'probe/stop'
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class ProbeError(Exception):
    """A stage of the probe did not complete in time."""


def sample_plan(nonce: str) -> ActionPlan:
    """Build a plan message that exercises every field type of the interfaces."""
    plan = ActionPlan(instruction=f'Put the red block into the wooden bowl. [{nonce}]',
                      model_image_width=256, model_image_height=128,
                      inference_time_s=0.125, generated_tokens=42)
    plan.header.frame_id = 'camera_optical'
    plan.raw_text = ('Step 1: Pick up the <p>red block</p> at <b>(0.320,  0.547)</b>, rotate '
                     '<r>[-116]</r> degrees, and drop it at <b>(0.543, 0.836)</b>.')
    plan.steps = [ActionStep(step_number=1, effector=ActionStep.EFFECTOR_SUCTION,
                             object_text='red block', pick_x_norm=0.32, pick_y_norm=0.547,
                             place_x_norm=0.543, place_y_norm=0.836, rotation_cw_deg=-116)]
    return plan


def spin_until(node: Node, done, timeout_s: float, stage: str) -> float:
    """Spin `node` until `done()` is true; return the seconds it took or raise ProbeError."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout_s:
            raise ProbeError(f'{stage}: no result within {timeout_s:.1f} s')
        rclpy.spin_once(node, timeout_sec=0.02)
    return time.monotonic() - start


def serve(timeout_s: float) -> int:
    """Echo plans back and answer one stop request, then exit (0) or time out (1)."""
    node = Node('loopback_probe_server')
    echo = node.create_publisher(ActionPlan, ECHO_TOPIC, RELIABLE)
    node.create_subscription(ActionPlan, PLAN_TOPIC, echo.publish, RELIABLE)
    answered = []

    def on_stop(request, response):
        response.success = True
        response.message = f'stop received (emergency={request.emergency})'
        answered.append(request.emergency)
        return response

    node.create_service(StopExecutor, STOP_SERVICE, on_stop)
    try:
        spin_until(node, lambda: bool(answered), timeout_s, 'server: waiting for a stop call')
        # Let the response leave before the participant goes away.
        time.sleep(0.2)
        return 0
    except ProbeError as exc:
        print(f'loopback_probe: FAILED {exc}', file=sys.stderr)
        return 1
    finally:
        node.destroy_node()


def probe(timeout_s: float) -> int:
    """Exchange a plan and a service call with a server; print timings; 0 on success."""
    node = Node('loopback_probe_client')
    pub = node.create_publisher(ActionPlan, PLAN_TOPIC, RELIABLE)
    echoes = []
    node.create_subscription(ActionPlan, ECHO_TOPIC, echoes.append, RELIABLE)
    stop = node.create_client(StopExecutor, STOP_SERVICE)
    nonce = f'{time.time_ns()}'
    plan = sample_plan(nonce)
    try:
        discovery_s = spin_until(
            node, lambda: pub.get_subscription_count() > 0 and stop.service_is_ready(),
            timeout_s, 'discovery of the server')
        sent = time.monotonic()
        last_publish = 0.0

        def echoed() -> bool:
            nonlocal last_publish
            # The server's echo publisher may match us a moment after we match it.
            if time.monotonic() - last_publish > 0.25:
                pub.publish(plan)
                last_publish = time.monotonic()
            return any(e.instruction == plan.instruction for e in echoes)

        spin_until(node, echoed, timeout_s, 'plan echo')
        round_trip_s = time.monotonic() - sent
        echo = next(e for e in echoes if e.instruction == plan.instruction)
        if echo != plan:
            raise ProbeError('plan echo: the echoed message differs from the one sent')
        future = stop.call_async(StopExecutor.Request(emergency=True))
        service_s = spin_until(node, future.done, timeout_s, 'stop service call')
        response = future.result()
        if not response.success or 'emergency=True' not in response.message:
            raise ProbeError(f'stop service call: unexpected response {response}')
    except ProbeError as exc:
        print(f'loopback_probe: FAILED {exc}', file=sys.stderr)
        return 1
    finally:
        node.destroy_node()
    print(f'loopback_probe: ok (discovery {discovery_s:.2f} s, plan round trip '
          f'{1e3 * round_trip_s:.1f} ms, service call {1e3 * service_s:.1f} ms)')
    return 0


def main() -> int:
    """Entry point of `loopback_probe`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--role', choices=('selftest', 'server', 'client'), default='selftest')
    parser.add_argument('--timeout-s', type=float, default=10.0,
                        help='limit for each stage (default: %(default)s)')
    args = parser.parse_args(rclpy.utilities.remove_ros_args(sys.argv)[1:])
    server = None
    if args.role == 'selftest':
        server = subprocess.Popen([sys.executable, '-m', 'llara_policy.ros.loopback_probe',
                                   '--role', 'server', '--timeout-s', str(args.timeout_s)])
    rclpy.init()
    try:
        code = serve(args.timeout_s) if args.role == 'server' else probe(args.timeout_s)
    finally:
        rclpy.try_shutdown()
    if server is not None:
        code = max(code, server.wait(timeout=args.timeout_s + 5))
    return code


if __name__ == '__main__':
    sys.exit(main())
