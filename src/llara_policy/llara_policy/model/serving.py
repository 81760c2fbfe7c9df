"""Serving a policy to a camera stream: latest-frame buffer, one worker thread, frame-age checks.

The image callback only stores the newest frame (`PlanWorker.put_frame`). Queries go to one
worker thread that waits (bounded) for a frame captured at or after the query's `not_before`,
refuses frames older than `max_frame_age_s`, runs the policy on the model frame and reports one
`Outcome` per query. One query runs at a time; a newer query supersedes one still waiting (queued
or waiting for its frame); a running policy call is never interrupted. ROS-free: policy_node
converts messages and publishes what the outcomes say.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
import enum
import re
import threading
import time
from typing import Optional

import numpy as np

from llara_policy.errors import ConfigError, LlaraError, ParseError, PromptError
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.types import (
    MODEL_FRAME_HEIGHT_PX,
    MODEL_FRAME_WIDTH_PX,
    ActionStep,
    Observation,
)

POLICIES = ('model', 'oracle')
PROMPT_MODES = ('inBC', 'D-inBC')
# An object description with its box, `<p>NAME</p> at <b>(cx, cy), {w, h}</b>` (prompting's
# OBJECT_DESCRIPTION_TEMPLATE): what D-inBC task text carries and inBC task text never does.
_DESCRIBED_OBJECT = re.compile(r'</p>\s*at\s*<b>\(')


@dataclass(frozen=True)
class ServingConfig:
    """How policy_node serves its policy (the model itself is `PolicyConfig`).

    Args:
        policy: 'model' (VlmPolicy over PolicyConfig.model_path) or 'oracle' (follows the
            simulator's sim/oracle_plan; simulation only).
        max_frame_age_s: frames older than this when a query would use them are refused.
        frame_wait_s: how long a query waits for a frame at or after its not_before (and, in
            oracle mode, for an oracle plan that fits the frame).
        prompt_mode: 'inBC' (task text names objects) or 'D-inBC' (task text also carries their
            boxes, built by the sender of the query); a query whose instruction does not match
            the mode is refused.
    """

    policy: str = 'model'
    max_frame_age_s: float = 1.0
    frame_wait_s: float = 5.0
    prompt_mode: str = 'inBC'

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ConfigError(f'policy must be one of {", ".join(POLICIES)}; got {self.policy!r}')
        if self.prompt_mode not in PROMPT_MODES:
            raise ConfigError(f'prompt_mode must be one of {", ".join(PROMPT_MODES)}; '
                              f'got {self.prompt_mode!r}')
        for name in ('max_frame_age_s', 'frame_wait_s'):
            if not getattr(self, name) > 0.0:
                raise ConfigError(f'{name} must be > 0, got {getattr(self, name)!r}')


class ServingState(enum.IntEnum):
    """Node state; the numbers are PolicyStatus.STATE_*."""

    STARTING = 0
    WAITING = 1
    RUNNING = 2
    READY = 3
    ERROR = 4


class StaleFrameError(LlaraError):
    """The frame a query would use is too old (or older than the query's not_before)."""


class NoFrameError(LlaraError):
    """No frame has arrived at all."""


class OraclePlanError(LlaraError):
    """No oracle plan fits the frame (oracle mode)."""


@dataclass(frozen=True)
class Frame:
    """A camera frame: RGB (H, W, 3) uint8, capture stamp (ns on the node's clock), frame id."""

    rgb: np.ndarray = field(compare=False)
    stamp_ns: int
    frame_id: str = ''


@dataclass(frozen=True)
class PlanQuery:
    """One request: plan from the first frame captured at or after `not_before_ns`."""

    query_id: int
    instruction: str
    history: tuple[ActionStep, ...] = ()
    not_before_ns: int = 0


class OutcomeKind(enum.Enum):
    """How a query ended; only PLAN is published as a plan."""

    PLAN = 'plan'
    PARSE_FAILURE = 'parse_failure'
    STALE_FRAME = 'stale_frame'
    ERROR = 'error'
    SUPERSEDED = 'superseded'


@dataclass(frozen=True)
class Outcome:
    """What became of one query.

    `model_rgb` is the frame the model saw (camera frame centre-cropped to the model frame's
    aspect and resized), `result` the PolicyResult (PLAN only), `message` the error text.
    """

    kind: OutcomeKind
    query: PlanQuery
    frame: Optional[Frame] = None
    model_rgb: Optional[np.ndarray] = field(default=None, compare=False)
    result: object = None
    inference_time_s: float = 0.0
    message: str = ''


@dataclass(frozen=True)
class ServingHealth:
    """Counters and state since start (PolicyStatus without the model's names)."""

    state: ServingState = ServingState.WAITING
    plans_published: int = 0
    parse_failures: int = 0
    stale_frames_refused: int = 0
    errors: int = 0
    last_inference_time_s: float = 0.0
    last_frame_age_s: float = -1.0
    last_error: str = ''


def to_model_frame(rgb: np.ndarray) -> np.ndarray:
    """Camera frame -> model frame: centred crop with the model's aspect, resized to 256x128.

    The same rule as `FramePreprocess.centered_crop`, which the executor undoes on the points;
    a frame that already is 256x128 passes unchanged.
    """
    height, width = rgb.shape[:2]
    if (width, height) == (MODEL_FRAME_WIDTH_PX, MODEL_FRAME_HEIGHT_PX):
        return rgb
    return FramePreprocess.centered_crop(width, height).apply(rgb)


def check_prompt_mode(instruction: str, prompt_mode: str) -> None:
    """Raise PromptError when the task text does not match inBC / D-inBC."""
    described = bool(_DESCRIBED_OBJECT.search(instruction))
    if prompt_mode == 'D-inBC' and not described:
        raise PromptError(f'prompt_mode D-inBC needs object boxes (<p>..</p> at <b>..</b>) in '
                          f'the instruction, got {instruction!r}')
    if prompt_mode == 'inBC' and described:
        raise PromptError(f'prompt_mode inBC takes object names only, but the instruction '
                          f'carries boxes (D-inBC text): {instruction!r}')


class PlanWorker:
    """The latest frame, the pending query and the one thread that runs the policy.

    `policy.select_action(observation, instruction, history)` returns a PolicyResult;
    `on_outcome(outcome, health)` hears every finished query and `on_state(health)` every
    state change, both from the worker thread (or from `submit` for a superseded query).
    `before_call(query, frame)` runs just before the policy (the oracle follower's hook).
    """

    def __init__(self, policy, config: ServingConfig, clock_ns: Callable[[], int],
                 on_outcome: Callable[[Outcome, ServingHealth], None],
                 on_state: Callable[[ServingHealth], None] = lambda health: None,
                 before_call: Optional[Callable[[PlanQuery, Frame], None]] = None):
        self.policy = policy
        self.config = config
        self._clock_ns = clock_ns
        self._on_outcome = on_outcome
        self._on_state = on_state
        self._before_call = before_call
        self._cond = threading.Condition()
        self._frame: Optional[Frame] = None
        self._pending: Optional[PlanQuery] = None
        self._stopping = False
        self.health = ServingHealth()
        self._thread = threading.Thread(target=self._run, name='plan_worker', daemon=True)
        self._thread.start()

    @property
    def latest_frame(self) -> Optional[Frame]:
        """The newest frame stored (None before the first)."""
        return self._frame

    def put_frame(self, frame: Frame) -> None:
        """Store the newest frame (never waits on the policy)."""
        with self._cond:
            self._frame = frame
            self._cond.notify_all()

    def submit(self, query: PlanQuery) -> None:
        """Queue a query; one still waiting is superseded (reported as SUPERSEDED)."""
        with self._cond:
            superseded, self._pending = self._pending, query
            self._cond.notify_all()
        if superseded is not None:
            self._finish(Outcome(OutcomeKind.SUPERSEDED, superseded,
                                 message=f'superseded by query {query.query_id}'))

    def refuse(self, query: PlanQuery, message: str) -> None:
        """Report a query that cannot be served at all (counted as an error)."""
        self._finish(Outcome(OutcomeKind.ERROR, query, message=message))

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the worker thread (after the policy call in progress, if any)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    return
                query, self._pending = self._pending, None
            self._finish(self._serve(query))

    def _serve(self, query: PlanQuery) -> Outcome:
        try:
            frame = self._wait_for_frame(query)
            if frame is None:
                return Outcome(OutcomeKind.SUPERSEDED, query, message='superseded while '
                               'waiting for a frame')
            check_prompt_mode(query.instruction, self.config.prompt_mode)
            model_rgb = to_model_frame(frame.rgb)
            if self._before_call is not None:
                self._before_call(query, frame)
            self._set_health(state=ServingState.RUNNING)
            start = time.perf_counter()
            result = self.policy.select_action(
                Observation(model_rgb, stamp_s=frame.stamp_ns * 1e-9), query.instruction,
                query.history)
            elapsed_s = time.perf_counter() - start
            if not result.steps:
                raise ParseError('the answer has no action step', result.raw_text)
            return Outcome(OutcomeKind.PLAN, query, frame, model_rgb, result, elapsed_s)
        except ParseError as error:
            return Outcome(OutcomeKind.PARSE_FAILURE, query,
                           message=f'unparseable answer: {error}; answer: {error.text[:200]!r}')
        except StaleFrameError as error:
            return Outcome(OutcomeKind.STALE_FRAME, query, message=str(error))
        except LlaraError as error:
            return Outcome(OutcomeKind.ERROR, query, message=f'{type(error).__name__}: {error}')
        except Exception as error:  # noqa: BLE001 (a thread boundary: report, keep serving)
            return Outcome(OutcomeKind.ERROR, query,
                           message=f'policy call failed: {type(error).__name__}: {error}')

    def _wait_for_frame(self, query: PlanQuery) -> Optional[Frame]:
        """Return the newest frame at or after not_before; None when a newer query came."""
        def ready() -> bool:
            frame = self._frame
            return (self._pending is not None or self._stopping
                    or (frame is not None and frame.stamp_ns >= query.not_before_ns))

        with self._cond:
            self._cond.wait_for(ready, timeout=self.config.frame_wait_s)
            if self._pending is not None or self._stopping:
                return None
            frame = self._frame
        if frame is None:
            raise NoFrameError(f'no camera frame within {self.config.frame_wait_s} s')
        age_s = (self._clock_ns() - frame.stamp_ns) * 1e-9
        self._set_health(last_frame_age_s=age_s)
        if frame.stamp_ns < query.not_before_ns:
            raise StaleFrameError(
                f'no frame at or after not_before within {self.config.frame_wait_s} s; the '
                f'newest is {(query.not_before_ns - frame.stamp_ns) * 1e-9:.3f} s older '
                f'than not_before ({age_s:.3f} s old)')
        if age_s > self.config.max_frame_age_s:
            raise StaleFrameError(f'frame is {age_s:.3f} s old (max_frame_age_s '
                                  f'{self.config.max_frame_age_s})')
        return frame

    def _set_health(self, **changes) -> None:
        with self._cond:
            old, self.health = self.health, replace(self.health, **changes)
            health = self.health
        if health.state != old.state:
            self._on_state(health)

    def _finish(self, outcome: Outcome) -> None:
        with self._cond:
            self.health = record(self.health, outcome)
            health = self.health
        self._on_outcome(outcome, health)


def record(health: ServingHealth, outcome: Outcome) -> ServingHealth:
    """Health after one outcome (counters, state, last error)."""
    kind = outcome.kind
    if kind is OutcomeKind.SUPERSEDED:
        return health
    if kind is OutcomeKind.PLAN:
        return replace(health, state=ServingState.READY,
                       plans_published=health.plans_published + 1,
                       last_inference_time_s=outcome.inference_time_s, last_error='')
    counter = {OutcomeKind.PARSE_FAILURE: 'parse_failures',
               OutcomeKind.STALE_FRAME: 'stale_frames_refused'}.get(kind, 'errors')
    return replace(health, state=ServingState.ERROR, last_error=outcome.message,
                   **{counter: getattr(health, counter) + 1})


class OracleFollower:
    """The simulator's oracle behind ScriptedPolicy: answers with the latest sim/oracle_plan.

    A plan fits a query's frame when its stamp (when the sim read the scene) is at or after the
    frame's, or at or after the query's not_before (> 0; the scene was read after the last
    motion, so it is the scene the frame shows). `expect` (PlanWorker.before_call) waits up to
    `wait_s` for such a plan.
    """

    def __init__(self, wait_s: float):
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._step: Optional[ActionStep] = None
        self._stamp_ns = -1
        self._floor_ns = 0

    def put(self, step: ActionStep, stamp_ns: int) -> None:
        """Store the newest oracle step and when its scene was read."""
        with self._cond:
            self._step, self._stamp_ns = step, stamp_ns
            self._cond.notify_all()

    def expect(self, query: PlanQuery, frame: Frame) -> None:
        """Wait for a plan that fits `frame` (OraclePlanError after `wait_s`)."""
        floor = frame.stamp_ns if query.not_before_ns <= 0 else min(frame.stamp_ns,
                                                                  query.not_before_ns)
        with self._cond:
            self._floor_ns = floor
            if not self._cond.wait_for(lambda: self._stamp_ns >= floor, timeout=self.wait_s):
                newest = 'none' if self._step is None else f'stamp {self._stamp_ns} ns'
                raise OraclePlanError(f'no sim/oracle_plan read at or after {floor} ns within '
                                      f'{self.wait_s} s (newest: {newest})')

    def __call__(self, observation: Observation, instruction: str,
                 history: Sequence[ActionStep]) -> ActionStep:
        """Return the oracle's step (ScriptedPolicy's Oracle signature)."""
        with self._cond:
            if self._step is None or self._stamp_ns < self._floor_ns:
                raise OraclePlanError('no oracle plan fits the frame (call expect first)')
            return self._step
