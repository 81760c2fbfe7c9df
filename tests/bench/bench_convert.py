"""Benchmark: episodes converted per second on one core to D-inBC + Aux-D (image writes excluded).

Run `python tests/bench/bench_convert.py`. The episodes imitate VIMA's training tasks: 2-5
objects with boxes in every frame, 1-4 steps, a prompt with 1-3 reference placeholders (objects
or scenes). One pass converts every episode (`dataset_writer.convert_episode`: the main D-inBC
samples and all six auxiliary sets) and serialises its part file text, i.e. everything
`convert` does per episode except encoding and writing images. Target: at least 100 episodes/s.
"""
import os
import random
import sys
import time

try:
    import llara_training  # noqa: F401 (the colcon workspace is sourced)
except ImportError:  # run from a plain checkout
    root = os.path.join(os.path.dirname(__file__), '..', '..', 'src')
    sys.path[:0] = [os.path.join(root, 'llara_policy'), os.path.join(root, 'llara_training')]
import numpy as np

from llara_policy.sim.episode import Placeholder, PlaceholderKind, ReferenceImage, TaskPrompt
from llara_policy.types import ActionStep, Effector, ImageBox, ImagePoint, ObjectDescription
from llara_training.aux_datasets import AuxConfig
from llara_training.conversations import BehaviourCloning, ConversationConfig
from llara_training.dataset_writer import convert_episode
from llara_training.episode import Episode, EpisodeSource, Frame

TARGET_EPISODES_PER_S = 100
EPISODES = 200
REPEATS = 5  # best of several passes: single passes vary on shared machines
NAMES = ('red letter R', 'polka dot heart', 'wooden bowl', 'green and purple stripe block',
         'tiger pentagon', 'granite pan', 'blue cross', 'rainbow ring')
TEMPLATES = ('Put the {dragged_obj_1} into the {base_obj}.',
             'Rearrange to this {scene} and then restore.',
             'Put the {dragged_obj_1} into the {base_obj} as in {scene}.')
RGB = np.zeros((128, 256, 3), np.uint8)
SEGM = np.zeros((0, 0), np.int32)


def random_box(rng: random.Random, name: str) -> ObjectDescription:
    return ObjectDescription(name, ImageBox(
        ImagePoint(rng.randint(10, 245) / 256, rng.randint(40, 120) / 128),
        rng.randint(8, 40) / 256, rng.randint(8, 40) / 128))


def random_episode(rng: random.Random, index: int) -> Episode:
    names = rng.sample(NAMES, rng.randint(2, 5))
    steps = rng.randint(1, 4)
    frames = tuple(Frame(RGB, SEGM, tuple(random_box(rng, name) for name in names))
                   for _ in range(steps + 1))
    template = rng.choice(TEMPLATES)
    placeholders = {}
    for key in ('dragged_obj_1', 'base_obj', 'scene'):
        if '{' + key + '}' not in template:
            continue
        scene = key == 'scene'
        shown = names if scene else [rng.choice(names)]
        objects = tuple(random_box(rng, name) for name in shown)
        placeholders[key] = Placeholder(
            key, PlaceholderKind.SCENE if scene else PlaceholderKind.OBJECT, tuple(shown),
            ReferenceImage(RGB, SEGM, dict(enumerate(shown, start=1)), objects))
    actions = tuple(ActionStep(random_box(rng, '-').box.center, random_box(rng, '-').box.center,
                               rng.randint(-180, 180), rng.choice(names), Effector.SUCTION, k + 1)
                    for k in range(steps))
    return Episode(f'bench-{index:06d}', EpisodeSource.SIM, 'bench', index,
                   TaskPrompt(template, placeholders), Effector.SUCTION, frames, actions, True)


def main() -> int:
    if hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rng = random.Random(0)
    episodes = [random_episode(rng, index) for index in range(EPISODES)]
    writer = BehaviourCloning(ConversationConfig.from_format('D-inBC'))
    aux = AuxConfig()  # Aux-D: all six sets
    best, samples, characters = float('inf'), 0, 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        samples = characters = 0
        for episode in episodes:
            conversion = convert_episode(episode, writer, aux)
            characters += len(conversion.part_text())
            samples += len(conversion.main) + sum(len(s) for s in conversion.aux.values())
        best = min(best, time.perf_counter() - start)
    rate = len(episodes) / best
    print(f'corpus: {len(episodes)} episodes, {samples:,} samples '
          f'({samples / len(episodes):.0f} per episode), {characters / 1e6:.1f} MB of JSON; '
          f'best of {REPEATS} passes, one core')
    print(f'D-inBC + Aux-D, images excluded: {rate:8,.0f} episodes/s '
          f'({samples / best:,.0f} samples/s)')
    verdict = 'met' if rate >= TARGET_EPISODES_PER_S else 'NOT met'
    print(f'ratio to the target of {TARGET_EPISODES_PER_S} episodes/s: '
          f'{rate / TARGET_EPISODES_PER_S:.2f} ({verdict})')
    return 0 if rate >= TARGET_EPISODES_PER_S else 1


if __name__ == '__main__':
    sys.exit(main())
