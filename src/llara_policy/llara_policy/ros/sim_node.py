"""sim_node: a simulator as one process; its world is both the camera and the arm.

Three nodes over one session: `sim_node` (`sim/reset`, `sim/status`, `sim/oracle_plan`), an
`executor_node` serving `execute_step` (moving by default), and a `perception_node` publishing
`camera/image` from the sim camera. `backend` picks the simulator: 'embedded'
(`sim.session.SimSession`: the executor's primitives on the sim's SimArm) or 'vima'
(`sim.vima_session.VimaSession`: VIMA-Bench's env, driven as a TableActuator through VIMA's
fixed map; VIMA's front view is the camera; VIMA scores each step). After every executed step
the session scores it and renders the new scene before the result is sent; frames asked for
during a motion wait for it, so every frame stamped after a motion shows the scene after it.
When the oracle gives up (VIMA's can), no plan is published, the episode ends as a failure in
sim/status and the log says why.
"""
from dataclasses import dataclass

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from llara_msgs.msg import ActionPlan, SimStatus
from llara_msgs.srv import SimReset
from llara_policy.errors import ConfigError, LlaraError
from llara_policy.geometry.transforms import PinholeCamera
from llara_policy.geometry.vima_map import check_vima_mapping
from llara_policy.ros import convert
from llara_policy.ros.executor_node import ExecutorNode
from llara_policy.ros.params import declare_config
from llara_policy.ros.perception_node import STATUS_QOS, PerceptionNode
from llara_policy.ros.run import run_node
from llara_policy.sim.env import SimEnvConfig
from llara_policy.sim.episode import Partition
from llara_policy.sim.session import SimSession, split_of
from llara_policy.sim.vima_bench import VimaEnvConfig
from llara_policy.sim.vima_session import VimaSession
from llara_policy.task_loop import LLARA_MAX_STEPS

NODE_NAME = 'sim_node'
RESET_SERVICE = 'sim/reset'
STATUS_TOPIC = 'sim/status'
ORACLE_PLAN_TOPIC = 'sim/oracle_plan'
BACKENDS = ('embedded', 'vima')


@dataclass(frozen=True)
class SimNodeConfig:
    """The simulator, its episode and camera.

    Args:
        backend: 'embedded' (our pybullet sim) or 'vima' (VIMA-Bench, when installed).
        task: VIMA task of the first episode (sim/reset may change it).
        partition: VIMA partition key, e.g. placement_generalization (L1) ... novel_object_
            generalization (L3), novel_task_generalization (L4, vima only); fixed for the
            node's life.
        seed: seed of the first episode, started at start-up (test seeds from 1000000).
        bonus_steps: steps the env allows beyond the task's own (sim/reset's max_steps is the
            sum); LLaRA's step budget, as its evaluator makes the env, so the task's budget
            ends an unsolved episode (launch files: max_steps; VIMA's own protocol: 2).
        renderer: 'auto', 'egl' or 'tiny' (pybullet's TinyRenderer, CPU); embedded only.
        place_height: 'table' (the executor's view: one support height for every place).
        vima_mapping: VIMA's fixed map convention (vima only): 'unbiased' for our own models,
            'llara' for LLaRA's released checkpoints.
        oracle_plan: publish the oracle's next step on sim/oracle_plan (policy:=oracle). Off
            with a model: VIMA's oracle also retires goals as its oracle loop does.
        rate_hz: camera/image frames per second (Hz).
        dry_run: the executor computes and checks but moves nothing (default false in sim).
    """

    backend: str = 'embedded'
    task: str = 'visual_manipulation'
    partition: str = Partition.PLACEMENT.value
    seed: int = 0
    bonus_steps: int = LLARA_MAX_STEPS
    renderer: str = 'auto'
    place_height: str = 'table'
    vima_mapping: str = 'unbiased'
    oracle_plan: bool = True
    rate_hz: float = 10.0
    dry_run: bool = False


def env_config(config: SimNodeConfig) -> SimEnvConfig:
    """Return the SimEnvConfig of the node's parameters (ConfigError naming a bad one)."""
    partitions = tuple(p.value for p in Partition)
    if config.partition not in partitions:
        raise ConfigError(f'parameter partition must be one of {partitions}, '
                          f'got {config.partition!r}')
    if config.place_height != 'table':
        raise ConfigError("parameter place_height must be 'table': the executor knows one "
                          f'support height for every place, got {config.place_height!r}')
    return SimEnvConfig(task=config.task, partition=Partition(config.partition),
                        split=split_of(config.seed), renderer=config.renderer,
                        bonus_steps=config.bonus_steps)


def open_session(config: SimNodeConfig) -> SimSession:
    """Return the backend's session (ConfigError naming a bad parameter)."""
    if config.backend not in BACKENDS:
        raise ConfigError(f'parameter backend must be one of {BACKENDS}, got {config.backend!r}')
    if config.backend == 'embedded':
        return SimSession(env_config(config))
    partitions = tuple(p.value for p in Partition)
    if config.partition not in partitions:
        raise ConfigError(f'parameter partition must be one of {partitions}, '
                          f'got {config.partition!r}')
    check_vima_mapping('parameter vima_mapping', config.vima_mapping)
    return VimaSession(VimaEnvConfig(task=config.task, partition=Partition(config.partition),
                                     split=split_of(config.seed),
                                     bonus_steps=config.bonus_steps,
                                     vima_mapping=config.vima_mapping))


class SimNode(Node):
    """The sim's own services and topics; `nodes` are all nodes of the process."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.config = declare_config(self, SimNodeConfig)
        self.session = open_session(self.config)
        self._reported_note = ''
        self.session.reset(self.config.seed)
        env, context = self.session.env, kwargs.get('context')
        drive = self.session.drive(self.config.dry_run)
        self.executor_node = ExecutorNode(drive.arm, drive.mapper, drive.workspace,
                                          drive.defaults, step_runner=self._run_step,
                                          context=context)
        mapping = env.calibration.mapping
        self.camera_node = PerceptionNode(
            self.session.frame,
            mapping.intrinsics if isinstance(mapping, PinholeCamera) else None,
            context=context, parameter_overrides=[
                Parameter('source', value='sim'),
                Parameter('rate_hz', value=self.config.rate_hz),
                Parameter('frame_id', value=env.calibration.camera_frame)])
        self.nodes = (self, self.executor_node, self.camera_node)
        self.status_pub = self.create_publisher(SimStatus, STATUS_TOPIC, STATUS_QOS)
        self.plan_pub = self.create_publisher(ActionPlan, ORACLE_PLAN_TOPIC, STATUS_QOS)
        self.create_service(SimReset, RESET_SERVICE, self.on_reset,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self._publish_episode()
        self.get_logger().info(f'{self.config.task} seed {self.config.seed} '
                               f'({self.config.partition}): {self.session.instruction}')

    def _run_step(self, execute):
        """Executor hook: the step under the world lock, scored; then status and plan."""
        try:
            return self.session.run_step(execute)
        finally:
            self._publish_episode()

    def on_reset(self, request: SimReset.Request,
                 response: SimReset.Response) -> SimReset.Response:
        """Start an episode (rebuilding the world for another task); a fresh executor."""
        with self.executor_node.exclusive() as free:
            try:
                if not free:
                    raise LlaraError('a step is executing; wait for its result')
                self.session.reset(request.seed, request.task)
                drive = self.session.drive(self.config.dry_run)
                self.executor_node.set_backend(drive.arm, drive.mapper,
                                               self.executor_node.workspace)
            except LlaraError as error:
                response.success, response.message = False, f'{type(error).__name__}: {error}'
                self.get_logger().error(f'sim/reset refused: {response.message}')
                return response
        state = self.session.state()
        response.success, response.instruction = True, self.session.instruction
        response.max_steps = state.max_steps
        response.message = f'{state.task} seed {state.seed}: {self.session.instruction}'
        self.get_logger().info(f'episode: {response.message}')
        self._publish_episode()
        return response

    def _publish_episode(self) -> None:
        """Publish sim/status and, unless the episode is over, the oracle's next step.

        The oracle is asked first: one that gives up ends the episode, which this status
        then reports (done, not success) with one log line.
        """
        header = Header(stamp=self.get_clock().now().to_msg())
        plan = self.session.oracle_plan() if self.config.oracle_plan else None
        state = self.session.state()
        if state.note and state.note != self._reported_note:
            self.get_logger().error(f'{state.task} seed {state.seed} step {state.steps}: '
                                    f'{state.note}')
        self._reported_note = state.note
        self.status_pub.publish(SimStatus(
            header=header, task=state.task, partition=state.partition, seed=state.seed,
            steps=state.steps, max_steps=state.max_steps, success=state.success,
            done=state.done, note=state.note))
        if plan is not None:
            header.frame_id = self.camera_node.config.frame_id
            pre = self.session.env.mapper.preprocess
            self.plan_pub.publish(convert.plan_msg(
                plan.steps, plan.raw_text, self.session.instruction, header,
                (pre.model_width_px, pre.model_height_px)))

    def destroy_node(self):
        """Release the sim world with the node."""
        self.session.close()
        return super().destroy_node()


def main(args=None) -> int:
    """Entry point of `sim_node` (three nodes, one process)."""
    return run_node(lambda: SimNode().nodes, args=args, multithreaded=True, num_threads=6,
                    name=NODE_NAME)


if __name__ == '__main__':
    raise SystemExit(main())
