"""The render CLI films an oracle episode with the pick and place points drawn."""
import imageio.v2 as imageio
import numpy as np

from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.render import annotate, main


def test_render_cli_writes_a_gif_of_a_successful_episode(tmp_path, capsys):
    out = tmp_path / 'ep.gif'
    assert main(['--task', 'visual_manipulation', '--seed', '0', '--out', str(out),
                 '--scale', '1', '--motion-fps', '2', '--renderer', 'tiny']) == 0
    frames = imageio.mimread(out)
    assert len(frames) > 5 and frames[0].shape[1] == 256
    assert 'oracle succeeded' in capsys.readouterr().out


def test_annotation_marks_pick_and_place_pixels():
    with SimEnv(SimEnvConfig('rotate', renderer='tiny')) as env:
        obs = env.reset(1)
        oracle = env.oracle()
    drawn = annotate(obs.rgb, oracle)
    u = round(oracle.step.pick.x_norm * 256)
    v = round(oracle.step.pick.y_norm * 128)
    ring = drawn[v - 6:v + 7, u - 6:u + 7]
    assert np.any(np.all(ring == (40, 220, 90), axis=-1))  # the green pick circle
