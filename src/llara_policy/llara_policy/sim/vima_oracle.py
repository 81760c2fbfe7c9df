"""Run VIMA-Bench's oracle episodes in this process: natively, or through VimaBenchEnv.

`python -m llara_policy.sim.vima_oracle --task rotate --partition placement_generalization
--seeds 0-4 --how model` prints one JSON line per episode. One VIMA env per process (pybullet's
global client), so the tests and the benchmark run this module in a subprocess per task.
'how': 'native' is VIMA's own loop (scripts/oracle/run.py: act, clip, step with
skip_oracle=False, oracle_max_steps); 'table' sends the oracle's table action through the
adapter; 'model' its model-frame step (through the fixed map in --mapping's convention).
"""
import argparse
import json
import math

import numpy as np

from llara_policy.errors import SimError
from llara_policy.execution import table_action_from_step
from llara_policy.geometry.vima_map import VIMA_MAPPINGS
from llara_policy.sim.episode import Partition, Split
from llara_policy.sim.vima_bench import VimaBenchEnv, VimaEnvConfig

HOWS = ('native', 'table', 'model')


def native_episode(env: VimaBenchEnv, seed: int) -> dict:
    """VIMA's own oracle loop on the adapter's underlying env (scripts/oracle/run.py)."""
    env.reset(seed)
    vima = env._env
    obs, info, steps = env._obs, {'success': False}, 0
    for steps in range(1, int(vima.task.oracle_max_steps) + 1):
        action = vima.task.oracle(vima).act(obs)
        if action is None:
            return {'success': False, 'steps': steps, 'gave_up': True}
        action = {k: np.clip(v, vima.action_space[k].low, vima.action_space[k].high)
                  for k, v in action.items()}
        obs, _, done, info = vima.step(action=action, skip_oracle=False)
        if done:
            break
    env._done = True
    return {'success': bool(info['success']), 'steps': steps, 'gave_up': False}


def adapter_episode(env: VimaBenchEnv, seed: int, how: str) -> dict:
    """Run the oracle through VimaBenchEnv: its table action ('table') or model step."""
    env.reset(seed)
    result, gave_up, grasps, pick_errors_mm = None, False, [], []
    for _ in range(env.step_limit):
        try:
            oracle = env.oracle()
        except SimError:
            gave_up = True
            break
        if how == 'model':
            sent = table_action_from_step(env.mapper, oracle.step)
            pick_errors_mm.append(1000 * math.dist(sent.pick_xy_m, oracle.action.pick_xy_m))
            result = env.step_model(oracle.step)
        else:
            result = env.step(oracle.action)
        grasps.append(result.picked)
        if result.done:
            break
    return {'success': bool(result and result.success), 'steps': result.steps if result else 0,
            'gave_up': gave_up, 'grasps': grasps,
            'pick_errors_mm': [round(e, 2) for e in pick_errors_mm]}


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition('-')
    return list(range(int(first), int(last or first) + 1))


def main(argv=None) -> None:
    """Run the episodes and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', required=True)
    parser.add_argument('--partition', default=Partition.PLACEMENT.value,
                        choices=[p.value for p in Partition])
    parser.add_argument('--seeds', default='0-4', help='first-last, e.g. 0-4')
    parser.add_argument('--how', default='model', choices=HOWS)
    parser.add_argument('--mapping', default='unbiased', choices=VIMA_MAPPINGS)
    args = parser.parse_args(argv)
    config = VimaEnvConfig(args.task, Partition(args.partition), Split.TEST,
                           vima_mapping=args.mapping)
    with VimaBenchEnv(config) as env:
        for seed in _seeds(args.seeds):
            outcome = (native_episode(env, seed) if args.how == 'native'
                       else adapter_episode(env, seed, args.how))
            print(json.dumps({'task': args.task, 'partition': args.partition, 'seed': seed,
                              'how': args.how, 'mapping': args.mapping, **outcome}), flush=True)


if __name__ == '__main__':
    main()
