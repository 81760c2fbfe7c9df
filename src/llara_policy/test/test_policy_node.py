"""policy_node in-process: plans from a tiny random VLM answer their query with the frame's stamp,
unparseable answers and stale frames are counted and never published, oracle mode follows
sim/oracle_plan, the image callback stores frames while the model runs; startup errors."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
import ros_harness
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from llara_msgs.msg import ActionPlan, PolicyQuery, PolicyStatus
from llara_policy.errors import ConfigError
from llara_policy.model.config import PolicyConfig
from llara_policy.model.tiny_models import save_tiny_llava
from llara_policy.ros.convert import step_to_msg
from llara_policy.ros.image_conversion import numpy_to_image
from llara_policy.ros.policy_node import (
    LATCHED_QOS,
    RELIABLE_QOS,
    PolicyNode,
    adopt_trained_settings,
)
from llara_policy.text import prompting
from llara_policy.types import ActionStep, ImagePoint

TASK = 'put the <p>red block</p> into the <p>bowl</p>'
# Fast tiny-model settings: one step, CPU, float32.
TINY = {'device': 'cpu', 'dtype': 'float32', 'max_answer_steps': 1}


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    return str(save_tiny_llava(tmp_path_factory.mktemp('tiny_llava')))


class Harness(ros_harness.Harness):
    """The shared harness (own context and DDS domain) plus a node acting as camera, task loop
    and sim."""

    def __init__(self):
        super().__init__()
        self.io = self.add(Node('test_io', context=self.context))
        self.plans, self.statuses, self.debug_images = [], [], []
        self.io.create_subscription(ActionPlan, 'policy/plan', self.plans.append, RELIABLE_QOS)
        self.io.create_subscription(PolicyStatus, 'policy/status', self.statuses.append,
                                    LATCHED_QOS)
        self.io.create_subscription(Image, 'policy/debug_image', self.debug_images.append,
                                    qos_profile_sensor_data)
        self.image_pub = self.io.create_publisher(Image, 'camera/image', qos_profile_sensor_data)
        self.query_pub = self.io.create_publisher(PolicyQuery, 'policy/query', RELIABLE_QOS)
        self.oracle_pub = self.io.create_publisher(ActionPlan, 'sim/oracle_plan', LATCHED_QOS)
        self.frame_age_s = 0.0
        self.rgb = np.random.default_rng(0).integers(0, 256, (128, 256, 3), dtype=np.uint8)
        self.frames_sent = []
        # A 20 Hz camera whose frames are `frame_age_s` old when published.
        self.io.create_timer(0.05, self.publish_frame)

    def policy_node(self, injected=None, **params) -> PolicyNode:
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        return self.add(PolicyNode(injected, context=self.context,
                                   parameter_overrides=overrides))

    def now(self) -> Time:
        return self.io.get_clock().now()

    def publish_frame(self) -> None:
        stamp = Time(nanoseconds=self.now().nanoseconds - int(self.frame_age_s * 1e9))
        header = Header(stamp=stamp.to_msg(), frame_id='test_camera')
        self.frames_sent.append(stamp.nanoseconds)
        self.image_pub.publish(numpy_to_image(self.rgb, 'rgb8', header))

    def query(self, query_id: int, history=(), not_before: Time | None = None) -> None:
        self.wait(lambda: self.query_pub.get_subscription_count() > 0, 'query subscriber')
        self.query_pub.publish(PolicyQuery(
            query_id=query_id, instruction=TASK, history=[step_to_msg(s) for s in history],
            not_before=(not_before or Time()).to_msg()))

    def status_where(self, check):
        return next((s for s in reversed(self.statuses) if check(s)), None)



@pytest.fixture
def harness():
    with Harness() as h:
        yield h


def stamp_ns(msg) -> int:
    return Time.from_msg(msg.header.stamp).nanoseconds


def test_tiny_vlm_plan_answers_the_query_with_the_source_frame_stamp(harness, tiny_dir):
    harness.policy_node(model_path=tiny_dir, decoding='template', **TINY)
    history = (ActionStep(ImagePoint(0.5, 0.5), ImagePoint(0.25, 0.75), 30),)
    not_before = harness.now()
    harness.query(41, history, not_before)
    harness.wait(lambda: harness.plans, 'a plan')
    plan = harness.plans[0]
    assert plan.query_id == 41 and plan.instruction == TASK
    assert stamp_ns(plan) in harness.frames_sent and stamp_ns(plan) >= not_before.nanoseconds
    assert plan.header.frame_id == 'test_camera'
    assert (plan.model_image_width, plan.model_image_height) == (256, 128)
    assert len(plan.steps) == 1 and plan.steps[0].step_number == 2  # after one history step
    assert [step_to_msg(s) for s in prompting.parse_answer(plan.raw_text).steps] == plan.steps
    assert plan.inference_time_s > 0 and plan.generated_tokens > 0
    harness.wait(lambda: harness.status_where(lambda s: s.plans_published == 1),
                       'status with the plan counted')
    status = harness.status_where(lambda s: s.plans_published == 1)
    assert status.state == PolicyStatus.STATE_READY
    assert status.model_name == os.path.basename(tiny_dir) and status.quantization == 'none'
    assert (status.dtype, status.parse_failures, status.last_error) == ('float32', 0, '')
    assert 'float32' in status.dtype_reason and 0 <= status.last_frame_age_s < 1.0
    harness.wait(lambda: harness.debug_images, 'a debug image')
    debug = harness.debug_images[0]
    assert (debug.width, debug.height, debug.encoding) == (512, 256, 'rgb8')
    assert stamp_ns(debug) == stamp_ns(plan)


def test_unparseable_answers_are_counted_never_published_and_the_node_keeps_running(
        harness, tiny_dir):
    # Greedy decoding of a random model with 4 new tokens cannot write a whole step.
    harness.policy_node(model_path=tiny_dir, decoding='greedy', max_new_tokens=4, **TINY)
    harness.query(1)
    harness.wait(lambda: harness.status_where(lambda s: s.parse_failures == 1),
                       'one parse failure')
    harness.query(2)
    harness.wait(lambda: harness.status_where(lambda s: s.parse_failures == 2),
                       'a second parse failure')
    status = harness.status_where(lambda s: s.parse_failures == 2)
    assert status.state == PolicyStatus.STATE_ERROR and 'unparseable' in status.last_error
    assert status.plans_published == 0
    harness.spin_for(0.2)
    assert harness.plans == [] and harness.debug_images == []


def test_stale_frames_are_refused_counted_and_give_no_plan(harness, tiny_dir):
    harness.frame_age_s = 10.0
    harness.policy_node(model_path=tiny_dir, max_frame_age_s=1.0, **TINY)
    harness.query(5)
    harness.wait(lambda: harness.status_where(lambda s: s.stale_frames_refused == 1),
                       'a refused stale frame')
    status = harness.status_where(lambda s: s.stale_frames_refused == 1)
    assert status.state == PolicyStatus.STATE_ERROR and 'old' in status.last_error
    assert status.last_frame_age_s > 9.0 and status.plans_published == 0
    harness.spin_for(0.2)
    assert harness.plans == []


def test_oracle_mode_publishes_the_oracle_step_after_the_text_round_trip(harness):
    harness.policy_node(policy='oracle')
    last_motion_end = harness.now()  # the sim reads the scene (and sends its oracle) after it
    oracle_step = ActionStep(ImagePoint(0.3125, 0.6875), ImagePoint(0.8, 0.21875), -90,
                             'red block', step_number=1)
    harness.oracle_pub.publish(ActionPlan(header=Header(stamp=harness.now().to_msg()),
                                          raw_text=prompting.format_answer([oracle_step]),
                                          steps=[step_to_msg(oracle_step)]))
    harness.query(3, not_before=last_motion_end)
    harness.wait(lambda: harness.plans, 'an oracle plan')
    plan = harness.plans[0]
    expected = prompting.parse_answer(prompting.format_answer([oracle_step])).steps
    assert plan.query_id == 3 and plan.steps == [step_to_msg(s) for s in expected]
    assert plan.raw_text == prompting.format_answer([oracle_step])
    harness.wait(lambda: harness.status_where(lambda s: s.plans_published == 1),
                       'status')
    status = harness.status_where(lambda s: s.plans_published == 1)
    assert (status.model_name, status.dtype, status.dtype_reason) == ('scripted-oracle', '', '')


class BlockingPolicy:
    """Blocks in select_action until released (a slow model)."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()

    def select_action(self, observation, instruction, history=()):
        self.started.set()
        assert self.release.wait(ros_harness.WAIT_S)
        from llara_policy.model.policy import PolicyResult, PolicyTimings
        step = ActionStep(ImagePoint(0.5, 0.5), ImagePoint(0.5, 0.5), 0, step_number=1)
        return PolicyResult((step,), prompting.format_answer([step]), PolicyTimings())


def test_the_image_callback_stores_frames_while_the_model_runs(harness):
    policy = BlockingPolicy()
    node = harness.policy_node(policy)
    harness.query(9)
    harness.wait(policy.started.is_set, 'the policy call')
    harness.wait(lambda: harness.status_where(
        lambda s: s.state == PolicyStatus.STATE_RUNNING), 'status running')
    before = node.worker.latest_frame.stamp_ns
    harness.wait(lambda: node.worker.latest_frame.stamp_ns > before,
                       'a newer frame stored while the policy is busy')
    assert not harness.plans
    policy.release.set()
    harness.wait(lambda: harness.plans, 'the plan')
    assert harness.plans[0].query_id == 9


def test_a_fine_tuned_checkpoint_is_prompted_as_it_was_trained(harness, tmp_path):
    model = save_tiny_llava(tmp_path / 'trained')
    # What llara_training finetune writes beside a checkpoint (the two settings it carries).
    (model / 'training_config.yaml').write_text('prompt_format: chat_template\n'
                                                'pad_to_square: false\n')
    node = harness.policy_node(model_path=str(model), decoding='template', **TINY)
    assert (node.config.prompt_format, node.config.pad_to_square) == ('chat_template', False)
    harness.query(5, (), harness.now())
    harness.wait(lambda: harness.plans, 'a plan from the fine-tuned checkpoint')
    # A parameter set away from its default, to something else than the training, is
    # refused naming both (a default is taken from the checkpoint, logged).
    (model / 'training_config.yaml').write_text('prompt_format: vicuna_v1\n'
                                                'pad_to_square: true\n')
    with pytest.raises(ConfigError, match="prompt_format is 'chat_template'.*trained with "
                       "'vicuna_v1'"):
        adopt_trained_settings(PolicyConfig(model_path=str(model),
                                            prompt_format='chat_template'), node.get_logger())


def test_a_model_that_cannot_load_is_a_one_line_startup_error_naming_the_path(tmp_path):
    missing = tmp_path / 'no_such_model'
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    result = subprocess.run(
        [sys.executable, '-m', 'llara_policy.ros.policy_node', '--ros-args',
         '-p', f'model_path:={missing}'], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    assert str(missing) in result.stderr and 'Traceback' not in result.stderr
