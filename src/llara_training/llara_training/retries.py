"""Missed-attempt samples: behaviour-cloning samples whose history ends in failed picks.

Closed-loop evaluation with history (prompt mode `h`, the released protocol) writes every
executed step into the next prompt, `You have finished: Step 1: ...`. The episodes of a
one-step task (visual_manipulation, rotate) never show a history, so after one missed pick the
model answers a prompt it never saw, and its later answers are much worse than its first (the
demo policy: 46% of first picks on the named object, 17% over all executed picks).

A pick that misses (the suction cup closes on bare table) leaves the scene as it was: the frame,
the task and the right next step stay those of the original sample; only the history grows by
the missed attempts. `missed_attempt_samples` writes such samples from behaviour-cloning samples
(LLaVA JSON, the `main` set): 1..`max_misses` attempts whose pick lies `MISS_RADIUS_NORM` away
from the demonstrated pick (image units, random direction), whose place is the demonstrated
place within `PLACE_JITTER_NORM`, with the demonstrated rotation; the answer is the original
one, renumbered after them. Every piece of text comes from `llara_policy.text.prompting`.
"""
from collections.abc import Sequence
from dataclasses import replace
import math
import random

from llara_policy.errors import ConfigError, ParseError
from llara_policy.text.answer_parsing import parse_answer
from llara_policy.text.prompting import (
    HISTORY_PREFIX,
    STEP_PREFIX,
    ActionSpacing,
    format_answer,
    format_step,
)
from llara_policy.types import ActionStep, ImagePoint

# A missed pick lies this far from the demonstrated one (image units): beyond the half-size of
# most objects of the 84 px demo frames (a closer point would often still pick the object) and
# within the spread of the demo policy's misses.
MISS_RADIUS_NORM = (0.05, 0.15)
PLACE_JITTER_NORM = 0.03  # the place of a missed attempt: the demonstrated one, nearly
MAX_MISSES = 5  # up to this many missed attempts before the answer (8-step episodes)


def missed_attempt_samples(samples: Sequence[dict], ratio: float, seed: int,
                           spacing: ActionSpacing = ActionSpacing.RELEASED,
                           max_misses: int = MAX_MISSES) -> list[dict]:
    """Return about ratio x len(samples) missed-attempt samples, ids `<id>_miss<k>`.

    Each sample gets int(ratio) of them, and one more with probability the fraction of ratio.
    All draws come from (seed, the sample's id, k): a sample's missed attempts do not depend on
    which other samples are converted with it (a subset of episodes gets the same ones).
    """
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not \
            0 <= ratio <= 100 or not isinstance(max_misses, int) or max_misses < 1:
        raise ConfigError(f'missed attempts: ratio in [0, 100] and max_misses >= 1, got '
                          f'{ratio!r}, {max_misses!r}')
    whole, fraction = divmod(ratio, 1)
    written = []
    for source in samples:
        if not isinstance(source, dict) or not source.get('id'):
            raise ConfigError(f'missed attempts: a sample is a LLaVA JSON object with an id, '
                              f'got {str(source)[:80]!r}')
        name = source['id']
        extra = random.Random(f'{seed}:{name}:extra').random() < fraction
        for k in range(int(whole) + extra):
            rng = random.Random(f'{seed}:{name}:{k}')
            written.append(missed_attempt_sample(source, rng.randint(1, max_misses), rng,
                                                 f'{name}_miss{k}', spacing))
    return written


def missed_attempt_sample(sample: dict, misses: int, rng: random.Random, sample_id: str,
                          spacing: ActionSpacing = ActionSpacing.RELEASED) -> dict:
    """Return `sample` with `misses` missed attempts of its first step added to the history."""
    try:
        human, gpt = (turn['value'] for turn in sample['conversations'])
        image = sample['image']
        steps = parse_answer(gpt).steps
    except (KeyError, TypeError, ValueError, ParseError) as error:
        raise ConfigError(f'sample {sample.get("id")!r} is not a one-round behaviour-cloning '
                          f'sample with a step answer: {error}') from error
    first = steps[0]
    if first.step_number < 1:
        raise ConfigError(f'sample {sample["id"]!r}: its answer has no "Step k:" number')
    attempts = [_missed(first, rng) for _ in range(misses)]
    lines = [STEP_PREFIX.format(k=first.step_number + n) + format_step(step, spacing, True)
             for n, step in enumerate(attempts)]
    # The history is the turn's last part (prompting.build_user_turn): the attempts follow
    # the steps already there, or start it.
    history = '\n'.join(lines) if HISTORY_PREFIX in human else HISTORY_PREFIX + '\n'.join(lines)
    answer = format_answer([replace(step, step_number=step.step_number + misses)
                            for step in steps], spacing)
    return {'id': sample_id, 'image': image,
            'conversations': [{'from': 'human', 'value': f'{human}\n{history}'},
                              {'from': 'gpt', 'value': answer}]}


def _missed(step: ActionStep, rng: random.Random) -> ActionStep:
    """Return the step with its pick moved MISS_RADIUS_NORM away, its place jittered."""
    radius = rng.uniform(*MISS_RADIUS_NORM)
    for _ in range(16):  # a direction that stays in the image (one exists: radius < 0.5)
        angle = rng.uniform(0, 2 * math.pi)
        x = step.pick.x_norm + radius * math.cos(angle)
        y = step.pick.y_norm + radius * math.sin(angle)
        if 0 <= x <= 1 and 0 <= y <= 1:
            break
    pick = ImagePoint(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0))
    place = ImagePoint(
        min(max(step.place.x_norm + rng.uniform(-PLACE_JITTER_NORM, PLACE_JITTER_NORM), 0.0), 1.0),
        min(max(step.place.y_norm + rng.uniform(-PLACE_JITTER_NORM, PLACE_JITTER_NORM), 0.0), 1.0))
    return replace(step, pick=pick, place=place, step_number=0)
