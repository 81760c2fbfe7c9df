"""Recorded sessions of the ROS graph (rosbag2 + MCAP directories) as episodes, without ROS.

`recorder_node` writes the graph's topics with their message definitions, so `rosbags` reads
them alone. One episode per `task/result` (task_node publishes one per task, after the task's
last `executor/executed`): the messages received after the previous result and up to it belong
to it.

- steps: the episode's `executor/executed` messages that executed (success, mapped, not a dry
  run), their `executed` step (what the executor did, projected back into the model frame: the
  history the policy saw); the executor reports no object phrase, so `object_text` comes from
  the `requested` step (the plan's). Step numbers are 1..T-1. They must agree with the
  task/result's steps, or the episode is rejected.
- frames: frame i is the camera image the policy planned step i+1 from: the image whose capture
  stamp is the plan's stamp (ActionPlan.header.stamp), else the first image captured at or
  after the query's not_before. The last frame is the first image captured at or after the
  end of the last step (the sim/status after it, else the executed step's stamp) and before
  the next episode began (its reset status or first query).
- model frame: a 256x128 sim camera is the model frame; another size is cut as policy_node
  cuts it (model/serving.py: centred crop with the model's aspect, resized). The bag does not
  record that cut: it is policy_node's fixed rule, assumed here.
- label mapping: LLARA when every point is a whole model pixel (VIMA-Bench's fixed map with
  LLaRA's arithmetic), UNBIASED when every point is a pixel centre, else CALIBRATION (a
  camera calibration's projection, the embedded sim's included). The bag does not say which
  map the executor used; exact arithmetic identifies the two fixed-map conventions.
- task and seed: from sim/status when the sim was running, else 'recorded' and the episode's
  index in the bag.
"""
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
import hashlib
from pathlib import Path
import re

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.sim.episode import TaskPrompt
from llara_policy.types import ActionStep, Effector, ImagePoint
from llara_training.episode import Episode, EpisodeSource, Frame, LabelMapping
from llara_training.episode_store import EpisodeStore
from llara_training.sources.sim_rollouts import Outcome

TOPICS = {'image': 'camera/image', 'query': 'policy/query', 'plan': 'policy/plan',
          'executed': 'executor/executed', 'result': 'task/result', 'status': 'sim/status'}
_REQUIRED = ('image', 'query', 'plan', 'executed', 'result')
_CHANNELS = {'rgb8': (3, (0, 1, 2)), 'bgr8': (3, (2, 1, 0)), 'rgba8': (4, (0, 1, 2)),
             'bgra8': (4, (2, 1, 0)), 'mono8': (1, (0, 0, 0))}
_NO_SEGMENTATION = np.zeros((0, 0), np.int32)


@dataclass(frozen=True)
class BagEpisode:
    """One task of a recording: the episode, or why there is none; notes on what was left out."""

    episode_id: str
    episode: Episode | None
    reason: str = ''
    note: str = ''


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _fields(step) -> tuple:
    return (step.effector, step.pick_x_norm, step.pick_y_norm, step.place_x_norm,
            step.place_y_norm, step.rotation_cw_deg)


class _Recording:
    """Every message of the bag's graph topics but the images' pixels (read on demand)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.messages: dict[str, list] = {key: [] for key in TOPICS}
        try:
            self._read()
        except (AnyReaderError, ReaderError, OSError) as error:
            raise ConfigError(f'{self.path}: not a readable rosbag2 recording ({error})') from None
        self.image_stamps = [stamp for _, (stamp, _) in self.messages['image']]

    def _read(self) -> None:
        with AnyReader([self.path]) as reader:
            self.start_ns = reader.start_time
            self._connections = {key: self._connection(reader, topic)
                                 for key, topic in TOPICS.items()}
            missing = [TOPICS[k] for k in _REQUIRED if not self._connections[k]]
            if missing:
                raise ConfigError(f'{self.path} has no {", ".join(missing)} (recorded by '
                                  'recorder_node with the sim or xArm graph?)')
            wanted = [c for c in self._connections.values() if c]
            keys = {c.id: key for key, c in self._connections.items() if c}
            for connection, received_ns, raw in reader.messages(connections=wanted):
                message = reader.deserialize(raw, connection.msgtype)
                if keys[connection.id] == 'image':
                    message = (_ns(message.header.stamp), received_ns)
                self.messages[keys[connection.id]].append((received_ns, message))

    def _connection(self, reader, topic: str):
        found = [c for c in reader.connections
                 if c.topic.strip('/') == topic or c.topic.endswith('/' + topic)]
        if len({c.topic for c in found}) > 1:
            names = ', '.join(sorted({c.topic for c in found}))
            raise ConfigError(f'{self.path}: several {topic} topics ({names}); one graph a bag')
        return found[0] if found else None

    def images(self, indices: set[int], width: int, height: int) -> dict[int, np.ndarray]:
        """Return the model frames of the images at `indices` (their order in the bag)."""
        frames = {}
        with AnyReader([self.path]) as reader:
            connection = [c for c in reader.connections if c.id == self._connections['image'].id]
            for index, (_, _, raw) in enumerate(reader.messages(connections=connection)):
                if index in indices:
                    message = reader.deserialize(raw, connection[0].msgtype)
                    frames[index] = _model_frame(message, width, height)
        return frames


def _model_frame(message, width: int, height: int) -> np.ndarray:
    """Decode an Image to RGB and cut it to the model frame (policy_node's rule)."""
    if message.encoding not in _CHANNELS:
        raise ConfigError(f'camera/image encoding {message.encoding!r} is not one of '
                          f'{", ".join(_CHANNELS)}')
    channels, order = _CHANNELS[message.encoding]
    rows = np.frombuffer(np.asarray(message.data, np.uint8).tobytes(), np.uint8)
    rows = rows[:message.step * message.height].reshape(message.height, message.step)
    pixels = rows[:, :message.width * channels].reshape(message.height, message.width, channels)
    rgb = np.ascontiguousarray(pixels[:, :, list(order)])
    if rgb.shape[:2] == (height, width):
        return rgb
    return FramePreprocess.centered_crop(message.width, message.height, width, height).apply(rgb)


def _first_image(stamps: list[int], not_before_ns: int, before_ns: float = float('inf')) -> int:
    """Index of the first image captured at or after `not_before_ns` (and before `before_ns`)."""
    for index, stamp in enumerate(stamps):
        if not_before_ns <= stamp < before_ns:
            return index
    raise LookupError(f'no camera image captured at or after {not_before_ns} ns'
                      + ('' if before_ns == float('inf') else f' and before {before_ns:.0f} ns'))


def _window(items: list, start: int, end: int) -> list:
    return [message for received, message in items if start < received <= end]


def _label_mapping(steps: Sequence[ActionStep], width: int, height: int) -> LabelMapping:
    values = [(p.x_norm * width, p.y_norm * height) for s in steps for p in (s.pick, s.place)]
    flat = [v for pair in values for v in pair]
    if all(float(v).is_integer() for v in flat):
        return LabelMapping.LLARA
    if all(float(v - 0.5).is_integer() for v in flat):
        return LabelMapping.UNBIASED
    return LabelMapping.CALIBRATION


def read_bag(path: Path) -> Iterator[BagEpisode]:
    """Yield the recording's episodes in order (one per task/result), or why one is missing."""
    recording = _Recording(path)
    name = re.sub(r'[^A-Za-z0-9._-]', '_', recording.path.resolve().name)
    digest = hashlib.sha256(str(recording.start_ns).encode()).hexdigest()[:6]
    results = recording.messages['result']
    plans = recording.messages['plan']
    starts = [received for received, _ in results]
    for index, (end, result) in enumerate(results, start=1):
        episode_id = f'bag-{name}-{digest}-{index:03d}'
        start = starts[index - 2] if index > 1 else -1
        next_end = starts[index] if index < len(starts) else float('inf')
        try:
            episode, note = _episode(recording, episode_id, index, result, start, end,
                                     next_end, plans)
            yield BagEpisode(episode_id, episode, '', note)
        except (LlaraError, LookupError, ValueError) as error:
            yield BagEpisode(episode_id, None, f'{type(error).__name__}: {error}')
    unfinished = _window(recording.messages['executed'], starts[-1] if starts else -1,
                         float('inf'))
    if unfinished:
        episode_id = f'bag-{name}-{digest}-{len(results) + 1:03d}'
        yield BagEpisode(episode_id, None, f'recording ended before the task finished '
                         f'({len(unfinished)} executed step(s), no task/result)')


def _episode(recording, episode_id, index, result, start, end, next_end, plans):
    """Build the episode of the task ending with `result` (messages received in (start, end])."""
    messages = recording.messages
    reports = [(received, e) for received, e in messages['executed'] if start < received <= end]
    kept = [(received, e) for received, e in reports if e.success and e.mapped and not e.dry_run]
    executed = [e for _, e in kept]
    if not executed:
        raise ValueError(f'no executed step ({len(reports)} executor report(s))')
    if [_fields(e.executed) for e in executed] != [_fields(s) for s in result.steps]:
        raise ValueError(f'executor/executed ({len(executed)} steps) disagrees with '
                         f'task/result ({len(result.steps)} steps): messages lost?')
    width, height = executed[0].model_image_width, executed[0].model_image_height
    queries = {q.query_id: q for q in _window(messages['query'], start, end)}
    statuses = _window(messages['status'], start, end)
    stamps = recording.image_stamps
    frame_indices = []
    for reported, report in kept:  # the latest plan before the report that proposed it
        plan = next((p for received, p in reversed(plans)
                     if received <= reported and p.steps and p.query_id in queries
                     and _fields(p.steps[0]) == _fields(report.requested)), None)
        if plan is None:
            raise LookupError(f'no policy/plan of this task proposed executed step '
                              f'{len(frame_indices) + 1}')
        stamp = _ns(plan.header.stamp)
        frame_indices.append(stamps.index(stamp) if stamp in stamps else
                             _first_image(stamps, _ns(queries[plan.query_id].not_before)))
    after = [s for s in statuses if s.steps == len(executed)]
    end_ns = _ns(after[-1].header.stamp) if after else _ns(executed[-1].header.stamp)
    frame_indices.append(_first_image(stamps, end_ns, _next_start(messages, end, next_end)))
    images = recording.images(set(frame_indices), width, height)
    frames = tuple(Frame(images[i], _NO_SEGMENTATION) for i in frame_indices)
    effectors = {e.executed.effector for e in executed}
    if len(effectors) != 1:
        raise ValueError(f'steps with both end effectors ({sorted(effectors)})')
    effector = Effector.SPATULA if effectors == {1} else Effector.SUCTION
    steps = tuple(
        ActionStep(ImagePoint(e.executed.pick_x_norm, e.executed.pick_y_norm),
                   ImagePoint(e.executed.place_x_norm, e.executed.place_y_norm),
                   e.executed.rotation_cw_deg,
                   e.executed.object_text or e.requested.object_text, effector, k)
        for k, e in enumerate(executed, start=1))
    status = statuses[-1] if statuses else _latest(messages['status'], end)
    task, seed = (status.task, int(status.seed)) if status is not None else ('recorded', index)
    template = result.instruction.replace('{', '{{').replace('}', '}}')
    episode = Episode(episode_id, EpisodeSource.ROSBAG, task, seed, TaskPrompt(template, {}),
                      effector, frames, steps, bool(result.success),
                      _label_mapping(steps, width, height))
    left_out = len(reports) - len(executed)
    note = f'{left_out} executor report(s) not executed (refused, failed or dry run)' \
        if left_out else ''
    return episode, note


def _next_start(messages, end: int, next_end: float) -> float:
    """Capture time at which the next episode began: its reset status or its first query."""
    for received, status in messages['status']:
        if end < received <= next_end and status.steps == 0:
            return _ns(status.header.stamp)
    for received, query in messages['query']:
        if end < received <= next_end:
            return _ns(query.header.stamp)
    return float('inf')


def _latest(items: list, end: int):
    earlier = [message for received, message in items if received <= end]
    return earlier[-1] if earlier else None


def import_bags(bags: Sequence[Path], store_root: Path,
                on_total: Callable[[int], None] = lambda n: None) -> Iterator[Outcome]:
    """Read recordings into the store; yield each episode's outcome (resumable).

    `on_total` is not called: the number of episodes is known only bag by bag. Episodes
    already in the store are skipped; a task that gave no episode is rejected with the reason
    (tried again by a later run); an unreadable bag is one rejection.
    """
    store = EpisodeStore(store_root, create=True)
    scratch = store.partial_dir('rosbag')
    done = set(store.episode_ids())
    for bag in bags:
        bag_id = 'bag-' + re.sub(r'[^A-Za-z0-9._-]', '_', Path(bag).resolve().name)
        try:
            items = list(read_bag(Path(bag)))
        except (LlaraError, OSError, ValueError, KeyError) as error:
            store.reject(bag_id, f'{type(error).__name__}: {error}', bag=str(bag))
            yield Outcome(bag_id, 'rejected', f'{type(error).__name__}: {error}')
            continue
        store.clear_rejection(bag_id)
        for item in items:
            if item.episode_id in done:
                yield Outcome(item.episode_id, 'skipped')
            elif item.episode is None:
                store.reject(item.episode_id, item.reason, bag=str(bag))
                yield Outcome(item.episode_id, 'rejected', item.reason)
            else:
                written = store.write(item.episode, scratch)
                store.clear_rejection(item.episode_id)
                yield Outcome(item.episode_id, 'written' if written else 'skipped', item.note,
                              item.episode.transitions)
    store.clear_partials('rosbag')
