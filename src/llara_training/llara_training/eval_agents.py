"""The two sides of an evaluation episode: the env (embedded sim or VIMA-Bench) and the agent.

An agent answers action queries (`act`) and `d`-mode questions about reference images
(`describe`). `VlmAgent` is the runtime's `VlmPolicy` (same preprocessing, prompt wrapping and
decoding as the policy node) with the answer decoded as LLaRA text (`prompting.parse_answer`,
the runtime's parser) or as RT-2-style action tokens (llara-spec 1.3). `OracleAgent` is the
env's scripted expert behind `ScriptedPolicy`: its step is written as LLaRA text and parsed
back like a model answer, and it describes reference images with their ground-truth boxes.

RT-2 actions become model-frame steps (VIMA metres through the continuous inverse of VIMA's
fixed map, the yaw change rounded to whole degrees) and run through `step_model` like every
answer; on VIMA-Bench that lands within float rounding of eval-rt2.py's positions.
"""
from collections.abc import Sequence
from dataclasses import dataclass, replace
import time

from llara_policy.errors import LlaraError, ParseError
from llara_policy.geometry.vima_map import (
    VIMA_COLUMN_AT_Y_MIN,
    VIMA_COLUMNS_PER_M,
    VIMA_ROW_AT_X_MIN,
    VIMA_ROWS_PER_M,
    VIMA_X_RANGE_M,
    VIMA_Y_RANGE_M,
)
from llara_policy.model.config import PolicyConfig, trained_policy_config
from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.episode import Partition, Placeholder, PlaceholderKind, Split
from llara_policy.sim.vima_bench import VIMA_WORKSPACE, VimaBenchEnv, VimaEnvConfig
from llara_policy.text import prompting
from llara_policy.text.action_tokens import (
    ACTION_TOKEN_BINS,
    ACTION_TOKEN_START,
    VALUES_PER_ACTION,
    token_ids_to_unit_values,
    unit_values_to_action,
)
from llara_policy.types import (
    MODEL_FRAME_HEIGHT_PX,
    MODEL_FRAME_WIDTH_PX,
    ActionStep,
    Effector,
    ImagePoint,
    Observation,
)
from llara_policy.workspace import Workspace
from llara_training.episode import LabelMapping
from llara_training.eval_config import EvalConfig
from llara_training.eval_prompts import question_turn


@dataclass(frozen=True)
class Reply:
    """One action query's outcome.

    `steps` are the decoded steps ('' `failure` then); `failure` says why the answer gave no
    step; `issues` name answer text that was not executed (a malformed or truncated later step,
    stray action fields, leftover action tokens); `model_s` is the time the agent took.
    """

    text: str
    steps: tuple[ActionStep, ...]
    failure: str = ''
    issues: tuple[str, ...] = ()
    model_s: float = 0.0


def decode_llara(text: str) -> Reply:
    """Parse LLaRA answer text with the runtime's parser; a ParseError becomes the failure."""
    try:
        parsed = prompting.parse_answer(text)
    except ParseError as error:
        return Reply(text, (), f'ParseError: {error}')
    issues = tuple(f'{d.kind.value}: {d.reason} (line {d.line}: {d.excerpt!r})'
                   for d in parsed.diagnostics if d.kind is not prompting.DiagnosticKind.PROSE)
    return Reply(text, parsed.steps, '', issues)


def decode_rt2(text: str, token_ids: Sequence[int], decoder: str, effector: Effector,
               first_step: int) -> Reply:
    """Decode RT-2-style action tokens as eval-rt2.py does: keep ids in [31000, 31256), fives.

    `decoder` 'rt2': VIMA table metres (the released baseline); 'rt2_image': image coordinates.
    """
    kept = [i for i in token_ids if ACTION_TOKEN_START <= i < ACTION_TOKEN_START
            + ACTION_TOKEN_BINS]
    count = len(kept) // VALUES_PER_ACTION
    if count == 0:
        return Reply(text, (), f'ParseError: no complete RT-2 action ({len(kept)} action '
                     f'tokens among {len(token_ids)}, {VALUES_PER_ACTION} needed per action)')
    values = token_ids_to_unit_values(kept[:count * VALUES_PER_ACTION])
    steps = tuple(
        _rt2_step(values[i * VALUES_PER_ACTION:(i + 1) * VALUES_PER_ACTION], decoder, effector,
                  first_step + i) for i in range(count))
    extra = len(kept) - count * VALUES_PER_ACTION
    issues = (f'{extra} trailing action tokens (an incomplete action) dropped',) if extra else ()
    return Reply(text, steps, '', issues)


def _rt2_step(values: Sequence[float], decoder: str, effector: Effector,
              number: int) -> ActionStep:
    if decoder == 'rt2_image':
        pick, place = ImagePoint(values[0], values[1]), ImagePoint(values[2], values[3])
        yaw_change_deg = values[4] * 360.0 - 180.0
    else:
        action = unit_values_to_action(values)
        pick, place = vima_point(*action.pick_xy_m), vima_point(*action.place_xy_m)
        yaw_change_deg = action.yaw_change_deg
    return ActionStep(pick, place, -round(yaw_change_deg), '', effector, number)


def vima_point(x_m: float, y_m: float) -> ImagePoint:
    """Return the model point VIMA's fixed map decodes to (x_m, y_m): its continuous inverse."""
    column = (y_m - VIMA_Y_RANGE_M[0]) * VIMA_COLUMNS_PER_M + VIMA_COLUMN_AT_Y_MIN
    row = (x_m - VIMA_X_RANGE_M[0]) * VIMA_ROWS_PER_M + VIMA_ROW_AT_X_MIN
    return ImagePoint(min(max(column / MODEL_FRAME_WIDTH_PX, 0.0), 1.0),
                      min(max(row / MODEL_FRAME_HEIGHT_PX, 0.0), 1.0))


class OracleAgent:
    """The env's scripted expert, answering in LLaRA text (ScriptedPolicy) and parsed back."""

    name = 'oracle'

    def __init__(self, spacing: prompting.ActionSpacing):
        # Imported here: the policy module loads torch, which the parent of workers never needs.
        from llara_policy.model.policy import ScriptedPolicy

        self._env = None
        self._policy = ScriptedPolicy(lambda _obs, _task, _history: self._env.oracle().step,
                                      spacing)

    def start_episode(self, env) -> None:
        """Answer from `env`'s oracle from now on."""
        self._env = env

    def act(self, observation: Observation, user_turn: str, executed: Sequence[ActionStep],
            first_step: int) -> Reply:
        """Answer the oracle's next step as text (it sees the scene: the turn is not needed)."""
        start = time.perf_counter()
        try:
            result = self._policy.select_action(observation, user_turn, executed[:first_step - 1])
        except LlaraError as error:  # VIMA's oracle gives up when it sees nothing to pick
            return Reply('', (), f'oracle: {type(error).__name__}: {error}')
        return replace(decode_llara(result.raw_text), model_s=time.perf_counter() - start)

    def describe(self, placeholder: Placeholder, question: str) -> str:
        """Ground truth in the aux datasets' answer forms: obj_det scene, obj_loc object."""
        boxes = placeholder.reference.objects
        if placeholder.kind is PlaceholderKind.SCENE:
            return prompting.format_scene(boxes)
        if not boxes:
            return prompting.format_object_phrase(placeholder.object_names[0])
        return prompting.format_object_description(boxes[0]) + '.'

    def token_text(self, token_ids: Sequence[int]) -> str:
        """Not available: the oracle has no tokenizer (EvalConfig refuses RT-2 with it)."""
        raise LlaraError('the oracle has no tokenizer for RT-2 action tokens')


class VlmAgent:
    """The runtime's VlmPolicy, answering the evaluator's turns; LLaRA or RT-2 decoding."""

    def __init__(self, policy, decoder: str):
        self.policy = policy
        self.decoder = decoder
        self.name = policy.config.model_path

    def start_episode(self, env) -> None:
        """Reset the policy (the evaluator draws user prompts itself)."""
        self.policy.reset()

    def act(self, observation: Observation, user_turn: str, executed: Sequence[ActionStep],
            first_step: int) -> Reply:
        """Generate one answer and decode it; an unparseable answer is the failure, not raised."""
        answer = self.policy.answer(observation, user_turn, first_step,
                                    force_greedy=self.decoder != 'llara')
        seconds = answer.timings.total_ms / 1e3
        if self.decoder == 'llara':
            return replace(decode_llara(answer.text), model_s=seconds)
        return replace(decode_rt2(answer.text, answer.token_ids, self.decoder,
                                  observation.effector, first_step), model_s=seconds)

    def describe(self, placeholder: Placeholder, question: str) -> str:
        """Answer a detection/localization question on the reference image greedily."""
        rgb = placeholder.reference.rgb
        return self.policy.answer(Observation(rgb), question_turn(question),
                                  force_greedy=True).text

    def token_text(self, token_ids: Sequence[int]) -> str:
        """Action-token ids as text, written by the model's tokenizer (the RT-2 history)."""
        return self.policy.tokenizer.decode(list(token_ids))


def policy_config(config: EvalConfig) -> PolicyConfig:
    """Return the VlmPolicy config of a model run, with its checkpoint's trained settings."""
    return trained_policy_config(PolicyConfig(
        model_path=config.policy, device=config.device, dtype=config.dtype,
        decoding=config.decoding, max_new_tokens=config.max_new_tokens,
        action_spacing=config.spacing, cpu_threads=config.cpu_threads))


def make_agent(config: EvalConfig):
    """Load the run's agent: the oracle, or the model directory through VlmPolicy."""
    if config.is_oracle:
        return OracleAgent(prompting.ActionSpacing(config.spacing))
    from llara_policy.model.policy import VlmPolicy  # torch only where a model runs

    return VlmAgent(VlmPolicy.load(policy_config(config)), config.decoder)


def make_env(config: EvalConfig, partition: Partition, task: str):
    """One env for (partition, task) on the test split; its own step limit never cuts short.

    The step limit is `max_steps` (LLaRA's --max-length), kept by the evaluator; the env's
    (the task's steps plus bonus steps) is set above it.
    """
    if config.env == 'sim':
        return SimEnv(SimEnvConfig(task=task, partition=partition, split=Split.TEST,
                                   renderer=config.renderer, bonus_steps=config.max_steps))
    return VimaBenchEnv(VimaEnvConfig(task=task, partition=partition, split=Split.TEST,
                                      bonus_steps=config.max_steps,
                                      vima_mapping=config.vima_mapping))


def env_workspace(env) -> Workspace:
    """Where a random fallback action may go: the sim's safety envelope, VIMA's action box."""
    return env.config.workspace if isinstance(env, SimEnv) else VIMA_WORKSPACE


def env_label_mapping(config: EvalConfig) -> LabelMapping:
    """How executed steps are labelled for RT-2 history tokens (as the training data was)."""
    return LabelMapping(config.vima_mapping) if config.env == 'vima' else LabelMapping.UNBIASED
