"""LLaRA's closed loop in the sim, through text: policy answer -> parse -> calibration -> arm.

The oracle's step is written as a model answer by ScriptedPolicy and parsed back (3-decimal
points, LLaRA's rotation convention), then executed with `step_model`, which maps the model
points through the sim camera's calibration file exactly as the executor will on the robot.
History grows as in LLaRA's single-step mode. The episode must succeed.
"""
import pytest

from llara_policy.model.policy import ScriptedPolicy
from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.episode import Split
from llara_policy.text import prompting
from llara_policy.types import Observation


@pytest.mark.parametrize('task,seed', [('visual_manipulation', 1_000_001),
                                       ('rotate', 1_000_002),
                                       ('pick_in_order_then_restore', 1_000_003)])
def test_scripted_policy_answers_drive_the_sim_to_success_through_text(task, seed):
    config = SimEnvConfig(task=task, split=Split.TEST, renderer='tiny')
    with SimEnv(config) as env:
        obs = env.reset(seed)
        policy = ScriptedPolicy(lambda _obs, _instruction, _history: env.oracle().step)
        policy.reset()
        instruction = prompting.build_task_text(env.info.prompt.template,
                                                env.info.prompt.references(),
                                                prompting.DescriptionMode.BOXES)
        history, result = [], None
        for _ in range(env.step_limit):
            answer = policy.select_action(Observation(obs.rgb, obs.effector), instruction,
                                          tuple(history))
            assert answer.raw_text.startswith(f'Step {len(history) + 1}: ')
            step = answer.steps[0]
            result = env.step_model(step)
            history.append(step)
            obs = result.obs
            if result.done:
                break
        assert result is not None and result.success and not result.failure, \
            f'{task} seed {seed}: no success after {len(history)} steps'
