"""The sim graph in one process (sim_node's three nodes, policy_node, task_node on one executor of
the shared ros_harness: own context and DDS domain, bounded waits), driven through `run_task`:
a tiny random VLM (unparseable answers counted and never executed: zero arm calls; template
answers published as plans, off-workspace targets refused before any arm call: the task goes
on, the sim does not count them, they stay out of the history), an injected
arm error (goal aborted with the arm's code, executor faulted, next goal refused until
executor/reset), and a camera that stops (stale frames refused, no motion)."""
import json

from action_msgs.msg import GoalStatus
import pytest
from rclpy.action import ActionClient
from rclpy.parameter import Parameter
import ros_harness
from std_msgs.msg import String

from llara_msgs.action import RunTask
from llara_msgs.msg import ActionPlan, PolicyStatus
from llara_msgs.srv import ResetExecutor
from llara_policy.arms.executor_types import ErrorCode, ExecutorState
from llara_policy.camera import CameraSource
from llara_policy.errors import SimError, UnsafeTargetError
from llara_policy.model.tiny_models import save_tiny_llava
from llara_policy.ros.perception_node import STATUS_QOS
from llara_policy.ros.policy_node import LATCHED_QOS, RELIABLE_QOS, PolicyNode
from llara_policy.ros.sim_node import SimNode
from llara_policy.ros.task_node import TaskNode
from llara_policy.sim.arm import Fault

# The SDK's moving calls (as test/xarm_standin.py): what "no motion" means here.
MOTION_METHODS = ('set_position', 'set_vacuum_gripper', 'motion_enable', 'set_state',
                  'set_mode', 'set_tcp_offset', 'set_tcp_load')
# Fast tiny-model settings: one step, CPU, float32.
TINY = {'device': 'cpu', 'dtype': 'float32', 'max_answer_steps': 1}
POLICY_TIMEOUT_S = 3.0  # task_node gives up on a plan after this (no plan comes in most tests)


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    return str(save_tiny_llava(tmp_path_factory.mktemp('tiny_llava')))


def _overrides(params: dict) -> list:
    return [Parameter(k, value=v) for k, v in params.items()]


class Graph(ros_harness.Harness):
    """sim_node (tiny renderer, 50 Hz camera), policy_node and task_node in one executor, plus
    listeners of policy/plan, policy/status and camera/status and a run_task client."""

    def __init__(self, policy: dict, task: dict | None = None):
        super().__init__()
        self.sim = SimNode(context=self.context, parameter_overrides=_overrides(
            {'renderer': 'tiny', 'rate_hz': 50.0}))
        for node in self.sim.nodes:
            self.add(node)
        self.policy = self.add(PolicyNode(context=self.context,
                                          parameter_overrides=_overrides(policy)))
        task = {'policy_timeout_s': POLICY_TIMEOUT_S, 'max_steps': 1, **(task or {})}
        self.task = self.add(TaskNode(context=self.context,
                                      parameter_overrides=_overrides(task)))
        self.plans, self.statuses, self.camera = [], [], []
        self.client.create_subscription(ActionPlan, 'policy/plan', self.plans.append,
                                        RELIABLE_QOS)
        self.client.create_subscription(PolicyStatus, 'policy/status', self.statuses.append,
                                        LATCHED_QOS)
        self.client.create_subscription(String, 'camera/status',
                                        lambda m: self.camera.append(json.loads(m.data)),
                                        STATUS_QOS)
        self.run_client = ActionClient(self.client, RunTask, 'run_task')
        # Every ExecuteStep the sim ran, with its outcome and the arm calls made during it:
        # sim_node runs each step through session.run_step (the check of the target included).
        self.steps = []
        run_step = self.sim.session.run_step

        def logged_run_step(execute):
            calls = len(self.arm.calls)
            try:
                result = run_step(execute)
            except Exception as error:
                self.steps.append((error, self.arm.calls[calls:]))
                raise
            self.steps.append((result, self.arm.calls[calls:]))
            return result

        self.sim.session.run_step = logged_run_step

    @property
    def arm(self):
        return self.sim.session.env.arm

    def motion_calls(self, since: int = 0) -> list:
        return [c for c in self.arm.calls[since:] if c.method in MOTION_METHODS]

    def run_task(self, max_steps: int = 1) -> tuple[int, RunTask.Result]:
        """Send a RunTask goal with the sim's instruction; wait for (status, result)."""
        self.wait(self.run_client.server_is_ready, 'run_task server')
        # Without a sim/status yet task_node asks for a frame after `now`, which the oracle
        # (a plan read at the last reset or step) never answers: a goal sent right at start-up
        # races the latched status' delivery.
        self.wait(lambda: self.task.sim_status is not None, 'sim/status at task_node')
        sent = self.run_client.send_goal_async(RunTask.Goal(
            instruction=self.sim.session.instruction, max_steps=max_steps))
        self.wait(sent.done, 'run_task acceptance')
        handle = sent.result()
        assert handle.accepted
        result = handle.get_result_async()
        self.wait(result.done, 'run_task result', timeout_s=ros_harness.WAIT_S + 60)
        return result.result().status, result.result().result

    def latest_status(self) -> PolicyStatus:
        return self.statuses[-1]

    def reset_executor(self) -> ResetExecutor.Response:
        return self.call(ResetExecutor, 'executor/reset', ResetExecutor.Request())


@pytest.fixture
def graphs():
    """Yields a factory; every Graph made is closed (context, nodes, sim world)."""
    made = []

    def make(**kwargs) -> Graph:
        made.append(Graph(**kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for graph in made:
            graph.close()


def test_tiny_vlm_unparseable_answers_end_the_task_with_no_plan_and_no_arm_call(
        graphs, tiny_dir):
    # Greedy decoding of a random model with 4 new tokens cannot write a whole step.
    graph = graphs(policy={'model_path': tiny_dir, 'decoding': 'greedy',
                           'max_new_tokens': 4, **TINY})
    calls = len(graph.arm.calls)
    status, result = graph.run_task()
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    # The task ends as soon as policy/status says query 1 ended without a plan.
    assert 'the policy answered query 1 without a plan (parse_failure: unparseable answer' \
        in result.message and list(result.steps) == []
    graph.wait(lambda: graph.latest_status().parse_failures >= 1, 'parse failure counted')
    policy = graph.latest_status()
    assert policy.plans_published == 0 and 'unparseable' in policy.last_error
    assert graph.plans == []
    assert graph.arm.calls[calls:] == []  # no arm call at all, let alone a motion
    assert graph.sim.session.state().steps == 0


def test_tiny_vlm_template_plans_are_published_and_off_workspace_targets_never_move_the_arm(
        graphs, tiny_dir):
    graph = graphs(policy={'model_path': tiny_dir, 'decoding': 'template', **TINY},
                   task={'max_steps': 3, 'policy_timeout_s': 20.0})  # a slow CI machine
    status, result = graph.run_task(max_steps=3)
    graph.wait(lambda: graph.plans, 'a plan on policy/plan')
    graph.wait(lambda: graph.latest_status().plans_published >= 1, 'plans counted')
    assert graph.latest_status().parse_failures == 0
    assert graph.plans[0].query_id == 1 and len(graph.plans[0].steps) == 1
    # Every published plan's step reached the executor (the plan is its only source here);
    # neither a refused step nor an executed one ends the task: all 3 steps ran unless the
    # sim ended the episode first.
    assert len(graph.steps) == len(graph.plans) >= 1
    sim = graph.sim.session.state()
    assert len(graph.steps) == 3 or sim.done, (graph.steps, sim)
    for outcome, calls in graph.steps:
        if isinstance(outcome, Exception):  # refused: off the workspace, before any arm call
            assert isinstance(outcome, UnsafeTargetError), outcome
            assert calls == []
        else:
            assert calls and (outcome.success or outcome.missed_pick)
    refused = sum(isinstance(o, Exception) for o, _ in graph.steps)
    # Refused steps are not in the history and the sim did not count them as steps.
    assert len(result.steps) == sim.steps == len(graph.steps) - refused
    assert graph.sim.executor_node.core.state is ExecutorState.IDLE  # refused, not faulted
    if refused:
        plural = 's' if refused > 1 else ''
        assert result.message.endswith(f'{refused} refused step{plural})'), result.message
    if not sim.done:
        assert status == GoalStatus.STATUS_ABORTED and result.message.startswith('step_limit')


def test_injected_arm_error_aborts_with_its_code_and_faults_until_executor_reset(graphs):
    graph = graphs(policy={'policy': 'oracle'})
    graph.arm.inject_fault(Fault('set_position', -7))
    status, result = graph.run_task()
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    assert f'error_code {int(ErrorCode.ARM)}, arm_code -7' in result.message, result.message
    assert graph.sim.executor_node.core.state is ExecutorState.FAULTED
    assert graph.sim.session.state().steps == 0

    calls = len(graph.arm.calls)
    status, result = graph.run_task()  # the policy still plans; the executor refuses the step
    assert status == GoalStatus.STATUS_ABORTED
    assert f'error_code {int(ErrorCode.FAULTED)})' in result.message, result.message
    assert graph.motion_calls(calls) == []
    assert [type(o).__name__ for o, _ in graph.steps] == ['ArmError', 'ExecutorFaultedError']
    assert graph.steps[1][1] == []  # refused before any arm call

    assert graph.reset_executor().success
    assert graph.sim.executor_node.core.state is ExecutorState.IDLE
    status, result = graph.run_task()
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
    assert len(result.steps) == 1 and graph.sim.session.state().success


def _dead_camera():
    raise SimError('camera unplugged (test)')


def test_a_camera_that_stops_gets_its_stale_frames_refused_and_nothing_moves(graphs):
    graph = graphs(policy={'policy': 'oracle', 'max_frame_age_s': 0.3, 'frame_wait_s': 0.5})
    graph.wait(lambda: graph.policy.worker.latest_frame is not None, 'a first camera frame')
    camera = graph.sim.camera_node
    # From now on every read of the sim camera fails: no frame is published any more.
    camera.source = CameraSource(camera.config, _dead_camera,
                                 clock_ns=lambda: camera.get_clock().now().nanoseconds)
    graph.wait(lambda: graph.camera and graph.camera[-1]['state'] == 'lost', 'camera lost')
    last_frame_ns = graph.policy.worker.latest_frame.stamp_ns
    graph.spin_for(0.4)  # the newest frame is now older than max_frame_age_s
    calls = len(graph.arm.calls)
    status, result = graph.run_task()
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    assert 'the policy answered query 1 without a plan (stale_frame:' in result.message
    assert list(result.steps) == []
    graph.wait(lambda: graph.latest_status().stale_frames_refused >= 1, 'stale frame counted')
    policy = graph.latest_status()
    assert policy.state == PolicyStatus.STATE_ERROR and 'old' in policy.last_error
    assert policy.plans_published == 0 and policy.last_frame_age_s > 0.3
    assert graph.plans == [] and graph.arm.calls[calls:] == []
    assert graph.policy.worker.latest_frame.stamp_ns == last_frame_ns  # no frame came since
