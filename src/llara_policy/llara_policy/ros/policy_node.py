"""policy_node: camera frames + PolicyQuery in, ActionPlan, PolicyStatus and a debug image out.

Parameters: the fields of `PolicyConfig` and of `serving.ServingConfig` (policy model|oracle,
max_frame_age_s, frame_wait_s, prompt_mode). The image callback only stores the newest frame;
`serving.PlanWorker` runs the policy in its own thread (one query at a time, a newer query
supersedes a waiting one), refuses stale frames and never publishes an unparseable answer as a
plan: such outcomes are counted in `policy/status`, and the node keeps running.
"""
from dataclasses import replace
from pathlib import Path
import threading

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from llara_msgs.msg import ActionPlan, PolicyQuery, PolicyStatus
from llara_policy.errors import ConfigError, LlaraError, ModelError
from llara_policy.model.config import TRAINING_CONFIG_FILE, PolicyConfig, read_trained_settings
from llara_policy.model.plan_overlay import draw_plan
from llara_policy.model.serving import (
    Frame,
    OracleFollower,
    Outcome,
    OutcomeKind,
    PlanQuery,
    PlanWorker,
    ServingConfig,
    ServingHealth,
)
from llara_policy.ros.convert import plan_msg, step_from_msg
from llara_policy.ros.image_conversion import image_to_numpy, numpy_to_image
from llara_policy.ros.params import declare_config
from llara_policy.ros.run import run_node

NODE_NAME = 'policy_node'
ORACLE_MODEL_NAME = 'scripted-oracle'
# Latest value for late joiners (graph contract: policy/status and sim/oracle_plan).
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
STATUS_PERIOD_S = 1.0


def _ns(stamp) -> int:
    return Time.from_msg(stamp).nanoseconds


def adopt_trained_settings(config: PolicyConfig, logger) -> PolicyConfig:
    """Return `config` with the prompt and image settings its checkpoint was trained with.

    A fine-tuned checkpoint's training_config.yaml says how it was prompted and preprocessed; a
    parameter left at its default takes that value (logged), one set to another value is a
    ConfigError naming both (never silently overridden).
    """
    trained = read_trained_settings(config.model_path)
    defaults = PolicyConfig()
    for key, value in trained.items():
        given = getattr(config, key)
        if given != value and given != getattr(defaults, key):
            raise ConfigError(f'parameter {key} is {given!r} but {config.model_path!r} was '
                              f'trained with {value!r} ({TRAINING_CONFIG_FILE})')
    if trained:
        logger.info(f'from {TRAINING_CONFIG_FILE}: ' + ', '.join(
            f'{key}={value!r}' for key, value in trained.items()))
    return replace(config, **trained)


class PolicyNode(Node):
    """Serves one policy to the graph; `policy` (any object with select_action) replaces it."""

    def __init__(self, policy=None, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.config = declare_config(self, PolicyConfig)
        self.serving = declare_config(self, ServingConfig)
        self._status_lock = threading.Lock()
        self.status = PolicyStatus(state=PolicyStatus.STATE_STARTING,
                                   quantization=self.config.quantization, last_frame_age_s=-1.0)
        self.status_pub = self.create_publisher(PolicyStatus, 'policy/status', LATCHED_QOS)
        self._publish_status()
        self.follower = None
        if self.serving.policy == 'oracle':
            policy = self._oracle_policy()
        elif policy is None:
            policy = self._load_model()
        self.plan_pub = self.create_publisher(ActionPlan, 'policy/plan', RELIABLE_QOS)
        self.debug_pub = self.create_publisher(Image, 'policy/debug_image',
                                               qos_profile_sensor_data)
        self.worker = PlanWorker(policy, self.serving, lambda: self.get_clock().now().nanoseconds,
                                 self._on_outcome, self._on_state,
                                 self.follower.expect if self.follower else None)
        self.create_subscription(Image, 'camera/image', self.on_image, qos_profile_sensor_data)
        self.create_subscription(PolicyQuery, 'policy/query', self.on_query, RELIABLE_QOS)
        self.create_timer(STATUS_PERIOD_S, self._publish_status)
        self._on_state(ServingHealth())
        self.get_logger().info(f'policy {self.status.model_name!r} ({self.serving.policy}, '
                               f'{self.serving.prompt_mode}) ready')

    def _load_model(self):
        from llara_policy.model.policy import VlmPolicy  # torch is imported with the model only
        self.config = adopt_trained_settings(self.config, self.get_logger())
        try:
            policy = VlmPolicy.load(self.config)
        except LlaraError as error:
            raise ModelError(f'cannot load model_path {self.config.model_path!r}: {error}') \
                from None
        loaded = policy.loaded
        self.status.model_name = Path(self.config.model_path).resolve().name
        self.status.dtype = str(loaded.dtype).removeprefix('torch.')
        self.status.dtype_reason = loaded.dtype_reason
        return policy

    def _oracle_policy(self):
        from llara_policy.model.policy import ScriptedPolicy
        self.follower = OracleFollower(self.serving.frame_wait_s)
        self.create_subscription(ActionPlan, 'sim/oracle_plan', self.on_oracle_plan, LATCHED_QOS)
        self.status.model_name = ORACLE_MODEL_NAME
        return ScriptedPolicy(self.follower)

    def on_image(self, msg: Image) -> None:
        """Store the newest frame; nothing else happens here."""
        try:
            rgb = image_to_numpy(msg, 'rgb8')
        except LlaraError as error:
            self.get_logger().error(f'camera/image refused: {error}', throttle_duration_sec=5.0)
            return
        self.worker.put_frame(Frame(rgb, _ns(msg.header.stamp), msg.header.frame_id))

    def on_query(self, msg: PolicyQuery) -> None:
        """Hand a query to the worker (a waiting one is superseded)."""
        try:
            history = tuple(step_from_msg(step) for step in msg.history)
        except LlaraError as error:
            self.worker.refuse(PlanQuery(msg.query_id, msg.instruction), f'bad history: {error}')
            return
        self.worker.submit(PlanQuery(msg.query_id, msg.instruction, history,
                                     _ns(msg.not_before)))

    def on_oracle_plan(self, msg: ActionPlan) -> None:
        """Keep the simulator's newest oracle step (oracle mode)."""
        if msg.steps:
            self.follower.put(step_from_msg(msg.steps[0]), _ns(msg.header.stamp))

    def _on_outcome(self, outcome: Outcome, health: ServingHealth) -> None:
        query = outcome.query
        with self._status_lock:  # published by _on_state below, after any plan
            self.status.last_query_id = query.query_id
            self.status.last_outcome = outcome.kind.value
        if outcome.kind is OutcomeKind.PLAN:
            result, frame = outcome.result, outcome.frame
            header = Header(stamp=Time(nanoseconds=frame.stamp_ns).to_msg(),
                            frame_id=frame.frame_id)
            height, width = outcome.model_rgb.shape[:2]
            plan = plan_msg(result.steps, result.raw_text, query.instruction, header,
                            (width, height), query.query_id)
            plan.inference_time_s = outcome.inference_time_s
            plan.generated_tokens = result.timings.new_tokens
            self.plan_pub.publish(plan)
            image = draw_plan(outcome.model_rgb, result.steps, query.instruction,
                              outcome.inference_time_s)
            self.debug_pub.publish(numpy_to_image(image, 'rgb8', header))
        elif outcome.kind is OutcomeKind.SUPERSEDED:
            self.get_logger().info(f'query {query.query_id} {outcome.message}')
        else:
            self.get_logger().error(f'query {query.query_id}: {outcome.message}')
        self._on_state(health)

    def _on_state(self, health: ServingHealth) -> None:
        with self._status_lock:
            status = self.status
            status.state = int(health.state)
            status.plans_published = health.plans_published
            status.parse_failures = health.parse_failures
            status.stale_frames_refused = health.stale_frames_refused
            status.errors = health.errors
            status.last_inference_time_s = health.last_inference_time_s
            status.last_frame_age_s = health.last_frame_age_s
            status.last_error = health.last_error
        self._publish_status()

    def _publish_status(self) -> None:
        with self._status_lock:
            self.status.header.stamp = self.get_clock().now().to_msg()
            self.status_pub.publish(self.status)

    def destroy_node(self):
        """Stop the worker with the node."""
        if hasattr(self, 'worker'):
            self.worker.stop()
        return super().destroy_node()


def main(args=None) -> int:
    """Entry point of `policy_node`."""
    return run_node(PolicyNode, args=args, name=NODE_NAME)


if __name__ == '__main__':
    raise SystemExit(main())
