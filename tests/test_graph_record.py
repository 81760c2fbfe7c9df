"""End to end: the embedded launcher runs sim.launch.py with record:=true (recorder_node starts
with the graph), one oracle episode of visual_manipulation, and the bag it leaves is read back
with `rosbags.highlevel.AnyReader` alone (no ROS): camera frames decode to 256x128 RGB, a
policy/plan answers a recorded policy/query (query_id), and a sim/status reports success. The
run gets a DDS domain of its own so other graphs on this machine are not seen."""
import os
from pathlib import Path

from graph_launch import run_launcher
import numpy as np
import pytest

for module in ('sim_node', 'policy_node', 'task_node', 'recorder_node'):
    pytest.importorskip(f'llara_policy.ros.{module}', reason=f'{module} not in this checkout')
highlevel = pytest.importorskip('rosbags.highlevel')

RUN_TIMEOUT_S = 300  # one oracle episode takes seconds; model-free start-up included


def read_bag(path: Path) -> dict[str, list]:
    """Every message of the bag, deserialized, by topic (definitions from the bag itself)."""
    messages: dict[str, list] = {}
    with highlevel.AnyReader([path]) as reader:
        for connection, _, raw in reader.messages():
            messages.setdefault(connection.topic.lstrip('/'), []).append(
                reader.deserialize(raw, connection.msgtype))
    return messages


def test_record_true_records_an_oracle_episode_readable_without_ros(tmp_path):
    bag = tmp_path / 'bag'
    code, output = run_launcher('sim.launch.py', 'policy:=oracle', 'task:=visual_manipulation',
                                'episodes:=1', 'renderer:=tiny', 'record:=true',
                                f'record_dir:={bag}', timeout_s=RUN_TIMEOUT_S,
                                domain_seed=os.getpid() + 7)
    assert code == 0, output[-4000:]
    # The table ends with `success: K/N`; the recorder may log after it while stopping.
    assert 'success: 1/1' in output.splitlines(), output[-4000:]
    assert any(line.startswith('[recorder_node]') for line in output.splitlines()), output[-4000:]
    assert 'did not stop on SIGINT' not in output
    assert (bag / 'metadata.yaml').is_file(), output[-4000:]

    messages = read_bag(bag)
    images = messages.get('camera/image', [])
    assert images, sorted(messages)
    for image in images:
        assert image.encoding == 'rgb8'
        frame = np.frombuffer(image.data, np.uint8).reshape(image.height, image.step)
        frame = frame[:, :image.width * 3].reshape(image.height, image.width, 3)
        assert frame.shape == (128, 256, 3)  # height 128, width 256: a 256x128 RGB frame
    assert any(frame.any() for frame in [np.asarray(images[-1].data)])  # not a blank frame

    queries = {q.query_id: q for q in messages.get('policy/query', [])}
    plans = messages.get('policy/plan', [])
    assert queries and plans, sorted(messages)
    answered = [p for p in plans if p.query_id in queries and len(p.steps) > 0]
    assert answered, ([q for q in queries], [(p.query_id, len(p.steps)) for p in plans])
    assert answered[0].instruction == queries[answered[0].query_id].instruction

    statuses = messages.get('sim/status', [])
    assert any(s.success for s in statuses), [(s.steps, s.success, s.done) for s in statuses]
    assert all(s.task == 'visual_manipulation' for s in statuses)
