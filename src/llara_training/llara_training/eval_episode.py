"""One evaluation episode, LLaRA's loop (`eval/vima_utils.py` eval_episode, llara-spec 5.1).

Python's and NumPy's global generators are seeded with the episode seed (as LLaRA does before
`make`), the env is reset with it, the task text is written for the prompt mode, then for at
most `max_steps` iterations: when no parsed step is queued, query the agent once (with `s` keep
the first step, else queue them all and run them open loop); take the next queued step and run
it through `env.step_model` (the executor's mapping); stop when the env reports success or
failure. The history is the executed steps projected back into the model frame
(`execution.executed_step`, as LLaRA rebuilds its history from the executed actions).

Nothing is hidden in the result: an answer that gives no step is a parse failure (with the
reason) and, LLaRA's default, a random action from the env's action box with no rotation runs
in its place (`on_parse_failure='random'`; 'stop' ends the episode instead); a step the sim's
safety envelope rejects (UnsafeTargetError, no motion) uses the iteration and is recorded as
rejected. The entry has LLaRA's fields plus ours (`actions`, `parse_failures`, ...). Each
model step's record says what its pick and place land on in the frame the answer was made on
(`eval_grounding`; a random fallback says 'random'), and `grounding` names the task's targets.
"""
from dataclasses import replace
import random
import time

import numpy as np

from llara_policy.errors import (
    LlaraError,
    ProjectionError,
    SimError,
    UnsafeTargetError,
    ValueRangeError,
)
from llara_policy.execution import TableAction, executed_step, table_action_from_step
from llara_policy.sim.episode import Partition
from llara_policy.text import prompting
from llara_policy.types import ActionStep, Effector, ImagePoint, Observation
from llara_policy.workspace import Workspace, check_table_action
from llara_training.eval_agents import env_label_mapping, env_workspace
from llara_training.eval_config import LEVEL_OF, EvalConfig
from llara_training.eval_grounding import (
    GroundingScene,
    episode_fields,
    grounding_scene,
    random_fields,
    step_fields,
)
from llara_training.eval_prompts import TurnWriter, task_text

RANDOM_ACTION_DRAWS = 100  # draws for a random action inside the workspace before giving up


def tid(partition: Partition, task: str, seed: int) -> str:
    """LLaRA's episode id `<partition>/<task>/<seed>`."""
    return f'{partition.value}/{task}/{seed}'


def random_action(workspace: Workspace, rng: np.random.Generator) -> TableAction:
    """LLaRA's fallback: uniform pick and place in the action box, identity rotations.

    The box is the env's (the sim's safety envelope, VIMA's action space); draws that fail
    the envelope's other checks (reach) are drawn again, never clipped.
    """
    x_m, y_m = (workspace.x_min_m, workspace.x_max_m), (workspace.y_min_m, workspace.y_max_m)
    for _ in range(RANDOM_ACTION_DRAWS):
        action = TableAction((rng.uniform(*x_m), rng.uniform(*y_m)),
                             (rng.uniform(*x_m), rng.uniform(*y_m)), 0.0)
        try:
            check_table_action(workspace, action)
        except UnsafeTargetError:
            continue
        return action
    raise SimError(f'no random action passed the workspace checks in {RANDOM_ACTION_DRAWS} '
                   'draws')


class _Episode:
    """The state of one running episode and its record."""

    def __init__(self, config: EvalConfig, env, agent, partition: Partition, task: str,
                 seed: int):
        self.config, self.env, self.agent = config, env, agent
        self.action_rng = np.random.default_rng(seed)
        # Parsed steps, their query index and the frame (segmentation) the answer was made on.
        self.queue: list[tuple[ActionStep, int, GroundingScene]] = []
        self.executed: list[ActionStep] = []
        self.result = None
        self.entry = {
            'tid': tid(partition, task, seed), 'level': partition.value, 'task': task,
            'seed': seed, 'prompt': '', 'lm_prompt_hist': [], 'lm_answer_hist': [], 'step': 0,
            'success': False, 'failure': False, 'partition_level': LEVEL_OF[partition],
            'env': config.env, 'task_text': '', 'description_queries': [], 'notes': [],
            'actions': [], 'parse_failures': [], 'answer_issues': [], 'queries': 0,
            'random_actions': 0, 'rejected_actions': 0, 'stopped': '', 'model_seconds': 0.0,
            'seconds': 0.0, 'grounding': {}}

    def query(self, observation: Observation, writer: TurnWriter, segm) -> None:
        """Ask the agent once; queue its steps (only the first with `s`) with the frame."""
        shown = len(self.executed) if self.config.prompt_mode.history else 0
        turn = writer.turn(self.executed)
        reply = self.agent.act(observation, turn, tuple(self.executed), shown + 1)
        index = len(self.entry['lm_prompt_hist'])
        self.entry['lm_prompt_hist'].append(turn)
        self.entry['lm_answer_hist'].append(reply.text)
        self.entry['queries'] += 1
        self.entry['model_seconds'] += reply.model_s
        self.entry['answer_issues'].extend({'query': index, 'issue': i} for i in reply.issues)
        if reply.failure:
            self.entry['parse_failures'].append({'query': index, 'reason': reply.failure})
        steps = reply.steps[:1] if self.config.prompt_mode.single_step else reply.steps
        scene = grounding_scene(self.env, segm)
        self.queue.extend((step, index, scene) for step in steps)

    def act(self, iteration: int, effector: Effector) -> bool:
        """Run the next queued step (or the fallback); False when the episode must stop."""
        record = {'iteration': iteration, 'source': 'model', 'query': -1, 'step_text': '',
                  'executed': False, 'rejected': '', 'history_text': ''}
        if self.queue:
            step, record['query'], scene = self.queue.pop(0)
            record['step_text'] = prompting.format_step(step, self._spacing())
            record.update(step_fields(scene, step))
        elif self.config.on_parse_failure == 'random':
            # executed_step reads only the effector and number of a random action's step.
            step = ActionStep(ImagePoint(0.0, 0.0), ImagePoint(0.0, 0.0), 0, effector=effector)
            record['source'] = 'random'
            record.update(random_fields())
            self.entry['random_actions'] += 1
        else:
            self.entry['stopped'] = f'iteration {iteration}: the answer gave no step'
            return False
        self.entry['actions'].append(record)
        try:
            if record['source'] == 'random':
                action = random_action(env_workspace(self.env), self.action_rng)
                record.update(_action_fields(action))
                self.result = self.env.step(action)
            else:
                action = table_action_from_step(self.env.mapper, step)
                record.update(_action_fields(action))
                self.result = self.env.step_model(step)  # the executor's mapping, checked
        except (UnsafeTargetError, ProjectionError, ValueRangeError) as error:
            record['rejected'] = f'{type(error).__name__}: {error}'
            self.entry['rejected_actions'] += 1
            return True
        record['executed'] = True
        self._add_history(step, action, record)
        return not self.result.done

    def _add_history(self, step: ActionStep, action: TableAction, record: dict) -> None:
        numbered = replace(step, step_number=len(self.executed) + 1)
        try:
            done = executed_step(self.env.mapper, numbered, action)
        except LlaraError as error:
            self.entry['notes'].append(f'iteration {record["iteration"]}: the executed step '
                                       f'has no history entry: {type(error).__name__}: {error}')
            return
        self.executed.append(done)
        record['history_text'] = prompting.format_step(done, self._spacing(), history=True)

    def _spacing(self) -> prompting.ActionSpacing:
        return prompting.ActionSpacing(self.config.spacing)


def _action_fields(action: TableAction) -> dict:
    return {'pick_xy_m': list(action.pick_xy_m), 'place_xy_m': list(action.place_xy_m),
            'yaw_change_deg': action.yaw_change_deg}


def run_episode(config: EvalConfig, env, agent, partition: Partition, task: str, seed: int,
                detector=None) -> dict:
    """Run one episode on `env` (made for `partition`/`task`) and return its JSON entry."""
    start = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    episode = _Episode(config, env, agent, partition, task, seed)
    entry = episode.entry
    obs = env.reset(seed)
    agent.start_episode(env)
    info = env.info
    entry['prompt'] = info.prompt.template
    entry['grounding'] = episode_fields(info)
    rng = random.Random(seed)  # user prompts and `d` questions, per episode as LLaRA's random
    text = task_text(info.prompt, config.prompt_mode.descriptions, describe=agent.describe,
                     rng=rng, detector=detector, threshold=config.detector_threshold)
    entry['task_text'] = text.text
    entry['description_queries'] = [vars(q) for q in text.queries]
    entry['notes'].extend(text.notes)
    writer = TurnWriter(text.text, obs.effector, config.prompt_id, rng,
                        config.prompt_mode.history, prompting.ActionSpacing(config.spacing),
                        config.decoder, config.rt2_instruction, agent.token_text,
                        env_label_mapping(config))
    for iteration in range(1, config.max_steps + 1):
        observation = Observation(obs.rgb, obs.effector)
        if not episode.queue:
            episode.query(observation, writer, obs.segm)
        entry['step'] = iteration
        keep_going = episode.act(iteration, obs.effector)
        if episode.result is not None:
            obs = episode.result.obs
        if not keep_going:
            break
    if episode.result is not None:
        entry['success'] = bool(episode.result.success)
        entry['failure'] = bool(episode.result.failure)
    entry['model_seconds'] = round(entry['model_seconds'], 3)
    entry['seconds'] = round(time.perf_counter() - start, 3)
    return entry
