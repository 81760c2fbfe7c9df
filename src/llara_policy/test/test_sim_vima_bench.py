"""VimaBenchEnv: the SimEnv interface over VIMA-Bench.

A small stand-in module with VIMA-Bench's public API (vimabench-spec A: make, seed/reset/step,
prompt, prompt_assets, meta_info, task.oracle) checks the conversions here; the real benchmark
is exercised when `vima_bench` is installed, and those tests skip with the reason otherwise.
"""
import math
import sys
import types

import numpy as np
import pybullet as p
import pytest

from llara_policy.errors import SimError
from llara_policy.execution import TableAction
from llara_policy.geometry.vima_map import vima_table_xy_to_pixels
from llara_policy.sim.episode import PlaceholderKind
from llara_policy.sim.vima_bench import (
    INSTALL_HINT,
    VimaBenchEnv,
    VimaEnvConfig,
    vima_bench_available,
)
from llara_policy.text import prompting

START = {'red block': (0.4, -0.2), 'blue bowl': (0.6, 0.25)}


def _paint(rgb, segm, body, xy, colour):
    column, row = vima_table_xy_to_pixels(xy)[0].astype(int)
    rgb[:, row - 5:row + 5, column - 5:column + 5] = np.array(colour)[:, None, None]
    segm[row - 5:row + 5, column - 5:column + 5] = body


class FakeVimaEnv:
    """Two objects in a pybullet client; a step moves whatever lies under pose0 to pose1."""

    def __init__(self, task):
        self.client_id = p.connect(p.DIRECT)
        shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=(0.03,) * 3,
                                       physicsClientId=self.client_id)
        self.ids = {name: p.createMultiBody(0, shape, -1, (*xy, 0.03),
                                            physicsClientId=self.client_id)
                    for name, xy in START.items()}
        self.task = types.SimpleNamespace(oracle_max_steps=3, oracle=self._oracle)
        self.prompt = 'Put the {dragged_obj_1} into the {base_obj}.'
        self.meta_info = {'end_effector_type': 'suction', 'obj_id_to_info': {
            self.ids['red block']: {'obj_name': 'block', 'texture_name': 'red'},
            self.ids['blue bowl']: {'obj_name': 'bowl', 'texture_name': 'blue'}}}

    def _xy(self, name):
        return p.getBasePositionAndOrientation(self.ids[name],
                                               physicsClientId=self.client_id)[0][:2]

    def _frame(self):
        rgb = np.zeros((3, 128, 256), np.uint8)
        segm = np.full((128, 256), 255, np.uint8)
        _paint(rgb, segm, self.ids['blue bowl'], self._xy('blue bowl'), (0, 0, 255))
        _paint(rgb, segm, self.ids['red block'], self._xy('red block'), (255, 0, 0))
        return {'rgb': {'front': rgb, 'top': rgb}, 'segm': {'front': segm, 'top': segm},
                'ee': 0}

    def seed(self, seed):
        self.seeded = seed

    def reset(self):
        for name, xy in START.items():
            p.resetBasePositionAndOrientation(self.ids[name], (*xy, 0.03), (0, 0, 0, 1),
                                              physicsClientId=self.client_id)
        obs = self._frame()
        self.prompt_assets = {
            key: {'rgb': obs['rgb'], 'placeholder_type': 'object',
                  'segm': {'front': np.where(obs['segm']['front'] == self.ids[name], 0, 255),
                           'obj_info': {'obj_id': 0, 'obj_name': name.split()[1],
                                        'obj_color': name.split()[0]}}}
            for key, name in (('dragged_obj_1', 'red block'), ('base_obj', 'blue bowl'))}
        return obs

    def _oracle(self, env):
        return types.SimpleNamespace(act=lambda obs: {
            'pose0_position': np.float32(self._xy('red block')),
            'pose0_rotation': np.float32([0, 0, 0, 1]),
            'pose1_position': np.float32(self._xy('blue bowl')),
            'pose1_rotation': np.float32([0, 0, math.sin(0.25), math.cos(0.25)])})

    def step(self, action):
        assert all(v.dtype == np.float32 for v in action.values())
        near = min(self.ids, key=lambda n: math.dist(self._xy(n), action['pose0_position']))
        if near == 'red block' and math.dist(self._xy(near), action['pose0_position']) < 0.05:
            p.resetBasePositionAndOrientation(
                self.ids[near], (*action['pose1_position'], 0.09), (0, 0, 0, 1),
                physicsClientId=self.client_id)
        success = math.dist(self._xy('red block'), self._xy('blue bowl')) < 0.05
        return self._frame(), 0.0, success, {'success': success, 'failure': False}

    def close(self):
        p.disconnect(physicsClientId=self.client_id)


@pytest.fixture
def fake_vima(monkeypatch):
    module = types.ModuleType('vima_bench')
    module.PARTITION_TO_SPECS = {'train': {'visual_manipulation': {}}, 'test': {
        'placement_generalization': {'visual_manipulation': {}}}}
    module.make = lambda task, **kwargs: FakeVimaEnv(task)
    monkeypatch.setitem(sys.modules, 'vima_bench', module)
    return module


def test_missing_vima_bench_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'vima_bench', None)
    with pytest.raises(SimError, match='not on PyPI'):
        VimaBenchEnv()
    assert 'pip install -e' in INSTALL_HINT


def test_observation_prompt_and_names_are_converted(fake_vima):
    with VimaBenchEnv(VimaEnvConfig()) as env:
        obs = env.reset(200000)
        assert env._env.seeded == 200000
        assert obs.rgb.shape == (128, 256, 3) and obs.segm.dtype == np.int32
        assert set(np.unique(obs.segm)) == {-1, *env.info.object_names}
        assert sorted(env.info.object_names.values()) == ['blue bowl', 'red block']
        prompt = env.info.prompt
        assert prompt.placeholders['dragged_obj_1'].kind is PlaceholderKind.OBJECT
        assert prompt.instruction() == 'Put the red block into the blue bowl.'
        text = prompting.build_task_text(prompt.template, prompt.references())
        assert text.startswith('Put the <p>red block</p> at <b>(')
        assert env.step_limit == 5


def test_oracle_and_model_steps_reach_success(fake_vima):
    with VimaBenchEnv(VimaEnvConfig()) as env:
        env.reset(200000)
        oracle = env.oracle()
        assert oracle.object_name == 'red block'
        assert oracle.action.yaw_change_deg == pytest.approx(math.degrees(0.5), abs=1e-3)
        assert oracle.step.rotation_cw_deg == -28
        result = env.step_model(oracle.step)  # through LLaRA's fixed VIMA map
        assert result.success and result.done and result.picked


def test_a_miss_is_reported_as_nothing_picked(fake_vima):
    with VimaBenchEnv(VimaEnvConfig()) as env:
        env.reset(200000)
        result = env.step(TableAction((0.3, 0.4), (0.5, 0.0), 0.0))
        assert not result.picked and not result.done


def test_one_vima_env_per_process(fake_vima):
    with VimaBenchEnv(VimaEnvConfig()), pytest.raises(SimError, match='one env per process'):
        VimaBenchEnv(VimaEnvConfig())
    VimaBenchEnv(VimaEnvConfig()).close()  # closing frees the slot


@pytest.mark.skipif(not vima_bench_available(),
                    reason='vima_bench is not installed (VIMA-Bench is not on PyPI; '
                           'see README "VIMA-Bench" to install it from source)')
def test_real_vima_bench_oracle_episode_succeeds():
    with VimaBenchEnv(VimaEnvConfig('visual_manipulation')) as env:
        env.reset(200000)
        for _ in range(env.step_limit):
            result = env.step(env.oracle().action)
            if result.done:
                break
        assert result.success
