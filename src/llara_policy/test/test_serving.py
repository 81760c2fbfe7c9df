"""PlanWorker (latest frame, one worker, stale frames, parse failures, superseding), the oracle
follower, prompt-mode checks, the model-frame crop and the debug drawing; no ROS."""
import threading

import numpy as np
import pytest

from llara_policy.errors import ConfigError, ParseError, PromptError
from llara_policy.model.plan_overlay import PICK_RGB, PLACE_RGB, draw_plan
from llara_policy.model.policy import PolicyResult, PolicyTimings, ScriptedPolicy
from llara_policy.model.serving import (
    Frame,
    OracleFollower,
    OraclePlanError,
    OutcomeKind,
    PlanQuery,
    PlanWorker,
    ServingConfig,
    ServingState,
    check_prompt_mode,
    to_model_frame,
)
from llara_policy.text import prompting
from llara_policy.types import ActionStep, ImagePoint

WAIT_S = 10.0
S = 1_000_000_000  # ns per second
STEP = ActionStep(ImagePoint(0.25, 0.5), ImagePoint(0.75, 0.25), 90, 'red block')
TASK = 'put the <p>red block</p> into the <p>bowl</p>'


def rgb(height=128, width=256, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


class FakePolicy:
    """Answers STEP (or raises `error`); blocks while `gate` is clear; records its calls."""

    def __init__(self, error=None):
        self.error = error
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.calls = []

    def select_action(self, observation, instruction, history=()):
        self.calls.append((observation, instruction, tuple(history)))
        self.started.set()
        assert self.gate.wait(WAIT_S)
        if self.error is not None:
            raise self.error
        return PolicyResult((STEP,), prompting.format_answer([STEP]), PolicyTimings(new_tokens=7))


class Clock:
    def __init__(self, now_ns=100 * S):
        self.now_ns = now_ns

    def __call__(self):
        return self.now_ns


class Harness:
    def __init__(self, policy, clock=None, before_call=None, **config):
        self.outcomes, self.states = [], []
        self.done = threading.Condition()
        self.clock = clock or Clock()
        config.setdefault('frame_wait_s', 0.5)
        self.worker = PlanWorker(policy, ServingConfig(**config), self.clock, self.on_outcome,
                                 lambda health: self.states.append(health.state), before_call)

    def on_outcome(self, outcome, health):
        with self.done:
            self.outcomes.append((outcome, health))
            self.done.notify_all()

    def wait_outcomes(self, count):
        with self.done:
            assert self.done.wait_for(lambda: len(self.outcomes) >= count, WAIT_S), \
                f'{len(self.outcomes)} of {count} outcomes'
        return self.outcomes


@pytest.fixture
def harnesses():
    made = []

    def make(*args, **kwargs):
        made.append(Harness(*args, **kwargs))
        return made[-1]

    yield make
    for harness in made:
        harness.worker.stop()


def test_a_fresh_frame_gives_a_plan_with_its_frame_and_the_query(harnesses):
    policy = FakePolicy()
    h = harnesses(policy)
    h.worker.put_frame(Frame(rgb(), 100 * S - S // 10, 'cam'))
    history = (STEP,)
    h.worker.submit(PlanQuery(7, TASK, history, not_before_ns=99 * S))
    outcome, health = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.PLAN
    assert outcome.query.query_id == 7 and outcome.frame.frame_id == 'cam'
    assert outcome.result.steps == (STEP,) and outcome.model_rgb.shape == (128, 256, 3)
    assert policy.calls[0][1:] == (TASK, history)
    assert health.state is ServingState.READY and health.plans_published == 1
    assert health.last_frame_age_s == pytest.approx(0.1)
    assert ServingState.RUNNING in h.states


def test_a_stale_frame_is_refused_and_counted_without_calling_the_policy(harnesses):
    policy = FakePolicy()
    h = harnesses(policy, max_frame_age_s=1.0)
    h.worker.put_frame(Frame(rgb(), 100 * S - 3 * S))
    h.worker.submit(PlanQuery(1, TASK))
    outcome, health = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.STALE_FRAME and '3.000 s old' in outcome.message
    assert health.stale_frames_refused == 1 and health.plans_published == 0
    assert health.state is ServingState.ERROR and health.last_error == outcome.message
    assert policy.calls == []


def test_a_query_waits_for_a_frame_at_or_after_not_before(harnesses):
    policy = FakePolicy()
    h = harnesses(policy, frame_wait_s=WAIT_S)
    h.worker.put_frame(Frame(rgb(seed=1), 99 * S))
    h.worker.submit(PlanQuery(1, TASK, not_before_ns=100 * S))
    h.worker.put_frame(Frame(rgb(seed=2), 100 * S))
    outcome, _ = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.PLAN and outcome.frame.stamp_ns == 100 * S
    assert np.array_equal(policy.calls[0][0].rgb, rgb(seed=2))


def test_only_frames_before_not_before_are_refused_as_stale(harnesses):
    """A camera that stopped before the last motion ended: refused, counted, no policy call."""
    policy = FakePolicy()
    h = harnesses(policy, frame_wait_s=0.05)
    h.worker.put_frame(Frame(rgb(), 99 * S))
    h.worker.submit(PlanQuery(1, TASK, not_before_ns=100 * S))
    outcome, health = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.STALE_FRAME and 'not_before' in outcome.message
    assert health.stale_frames_refused == 1 and policy.calls == []


def test_no_frame_at_all_is_an_error(harnesses):
    h = harnesses(FakePolicy(), frame_wait_s=0.05)
    h.worker.submit(PlanQuery(1, TASK))
    outcome, health = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.ERROR and 'no camera frame' in outcome.message
    assert health.errors == 1


def test_an_unparseable_answer_is_counted_and_the_worker_keeps_serving(harnesses):
    policy = FakePolicy(ParseError('no action step found', 'Sure, here', -1))
    h = harnesses(policy)
    h.worker.put_frame(Frame(rgb(), 100 * S))
    h.worker.submit(PlanQuery(1, TASK))
    outcome, health = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.PARSE_FAILURE and 'Sure, here' in outcome.message
    assert health.parse_failures == 1 and health.state is ServingState.ERROR
    policy.error = None
    h.worker.submit(PlanQuery(2, TASK))
    outcome, health = h.wait_outcomes(2)[1]
    assert outcome.kind is OutcomeKind.PLAN
    assert (health.parse_failures, health.plans_published, health.last_error) == (1, 1, '')


def test_an_unexpected_exception_is_an_error_not_a_dead_worker(harnesses):
    policy = FakePolicy(RuntimeError('CUDA out of memory'))
    h = harnesses(policy)
    h.worker.put_frame(Frame(rgb(), 100 * S))
    h.worker.submit(PlanQuery(1, TASK))
    outcome, health = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.ERROR and 'CUDA out of memory' in outcome.message
    policy.error = None
    h.worker.submit(PlanQuery(2, TASK))
    assert h.wait_outcomes(2)[1][0].kind is OutcomeKind.PLAN


def test_frames_are_stored_while_the_policy_runs_and_newer_queries_supersede_waiting_ones(
        harnesses):
    policy = FakePolicy()
    policy.gate.clear()
    h = harnesses(policy)
    h.worker.put_frame(Frame(rgb(), 100 * S))
    h.worker.submit(PlanQuery(1, TASK))
    assert policy.started.wait(WAIT_S)
    # The policy is blocked inside select_action: storing a frame must not wait for it.
    storer = threading.Thread(target=h.worker.put_frame, args=(Frame(rgb(seed=3), 100 * S + 1),))
    storer.start()
    storer.join(WAIT_S)
    assert not storer.is_alive() and h.worker.latest_frame.stamp_ns == 100 * S + 1
    h.worker.submit(PlanQuery(2, TASK))
    h.worker.submit(PlanQuery(3, TASK))  # 2 never started: superseded
    policy.gate.set()
    outcomes = h.wait_outcomes(3)
    kinds = {o.query.query_id: o.kind for o, _ in outcomes}
    assert kinds == {1: OutcomeKind.PLAN, 2: OutcomeKind.SUPERSEDED, 3: OutcomeKind.PLAN}
    assert outcomes[-1][1].plans_published == 2
    assert outcomes[-1][0].frame.stamp_ns == 100 * S + 1


def test_a_query_waiting_for_its_frame_is_superseded_by_a_newer_query(harnesses):
    h = harnesses(FakePolicy(), frame_wait_s=WAIT_S)
    h.worker.submit(PlanQuery(1, TASK, not_before_ns=101 * S))
    h.worker.submit(PlanQuery(2, TASK))
    h.worker.put_frame(Frame(rgb(), 100 * S))
    outcomes = h.wait_outcomes(2)
    assert [(o.query.query_id, o.kind) for o, _ in outcomes] == [
        (1, OutcomeKind.SUPERSEDED), (2, OutcomeKind.PLAN)]


def test_the_model_sees_the_centred_crop_of_a_larger_camera_frame(harnesses):
    policy = FakePolicy()
    h = harnesses(policy)
    camera = rgb(480, 640)
    h.worker.put_frame(Frame(camera, 100 * S))
    h.worker.submit(PlanQuery(1, TASK))
    assert h.wait_outcomes(1)[0][0].kind is OutcomeKind.PLAN
    assert policy.calls[0][0].rgb.shape == (128, 256, 3)
    assert to_model_frame(camera).shape == (128, 256, 3)
    small = rgb()
    assert to_model_frame(small) is small


def test_prompt_modes_refuse_instructions_of_the_other_mode(harnesses):
    described = 'put the <p>red block</p> at <b>(0.500, 0.250), {0.100, 0.100}</b> into it'
    check_prompt_mode(TASK, 'inBC')
    check_prompt_mode(described, 'D-inBC')
    with pytest.raises(PromptError, match='D-inBC'):
        check_prompt_mode(TASK, 'D-inBC')
    with pytest.raises(PromptError, match='inBC takes object names only'):
        check_prompt_mode(described, 'inBC')
    policy = FakePolicy()
    h = harnesses(policy, prompt_mode='D-inBC')
    h.worker.put_frame(Frame(rgb(), 100 * S))
    h.worker.submit(PlanQuery(1, TASK))
    outcome, health = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.ERROR and health.errors == 1 and policy.calls == []


@pytest.mark.parametrize('changes', [{'policy': 'vla'}, {'prompt_mode': 'dinbc'},
                                     {'max_frame_age_s': 0.0}, {'frame_wait_s': -1.0}])
def test_serving_config_names_a_bad_field(changes):
    with pytest.raises(ConfigError, match=next(iter(changes))):
        ServingConfig(**changes)


def test_oracle_mode_answers_a_fitting_oracle_plan_through_the_text_round_trip(harnesses):
    follower = OracleFollower(wait_s=WAIT_S)
    oracle_step = ActionStep(ImagePoint(0.1234, 0.5), ImagePoint(0.9, 0.3333), -45, 'bowl')
    h = harnesses(ScriptedPolicy(follower), before_call=follower.expect)
    h.worker.put_frame(Frame(rgb(), 100 * S))
    follower.put(STEP, 99 * S)  # read before the frame and before not_before: not this scene
    h.worker.submit(PlanQuery(1, TASK, (STEP,), not_before_ns=100 * S))
    follower.put(oracle_step, 100 * S + 5)  # read after the last motion: fits
    outcome, _ = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.PLAN
    expected = prompting.parse_answer(prompting.format_answer(
        [ActionStep(oracle_step.pick, oracle_step.place, -45, 'bowl', step_number=2)])).steps
    assert outcome.result.steps == expected
    assert outcome.result.steps[0].pick.x_norm == 0.123  # the model's 3 decimals


def test_oracle_mode_without_a_fitting_plan_is_an_error(harnesses):
    follower = OracleFollower(wait_s=0.05)
    h = harnesses(ScriptedPolicy(follower), before_call=follower.expect)
    follower.put(STEP, 99 * S)
    h.worker.put_frame(Frame(rgb(), 100 * S))
    h.worker.submit(PlanQuery(1, TASK))
    outcome, health = h.wait_outcomes(1)[0]
    assert outcome.kind is OutcomeKind.ERROR and 'oracle_plan' in outcome.message
    assert health.errors == 1
    with pytest.raises(OraclePlanError):
        OracleFollower(0.01)(None, TASK, ())


def test_debug_image_draws_points_arrow_and_text_on_an_enlarged_copy():
    frame = np.zeros((128, 256, 3), np.uint8)
    image = draw_plan(frame, [STEP], TASK, 0.25)
    assert image.shape == (256, 512, 3) and image.dtype == np.uint8
    assert not frame.any()  # the input is not drawn on
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert PICK_RGB in colours and PLACE_RGB in colours
    assert image[:20].any() and image[-20:].any()  # instruction on top, latency at the bottom


def test_debug_image_text_sits_on_a_darkened_box():
    frame = np.full((128, 256, 3), 200, np.uint8)  # a light, uniform table
    image = draw_plan(frame, [], 'put the <p>red block</p> into the <p>bowl</p>', 0.25)
    band = image[4:20, 4:200]  # the instruction's line
    dark = (band <= 200 * 0.3 + 1).all(axis=-1)
    white = (band >= 230).all(axis=-1)
    # Behind the letters the table is darkened (not only a thin outline round each stroke);
    # the strokes themselves stay white, and the phrase tags are not drawn.
    assert dark.mean() > 0.5 and white.any()
    assert (image[40:100] == 200).all()  # nothing drawn away from the text
