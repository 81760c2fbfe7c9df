"""End to end: `python -m llara_bringup.demo` with a tiny random LLaVA (template decoding: every
answer parses, its targets may be refused) and the oracle, one episode of visual_manipulation and
one of rotate. What it prints is checked against the launchers' own output lines, and the GIF
against the bag read back here with rosbags alone: one frame per policy/plan, every policy/query
either planned or listed. The demo's graphs run the evaluator's episode protocol: its sim env is
the one `llara_training evaluate` makes and its budget is LLaRA's 8 queries. Also: a missing
policy folder and a failing launcher are reported, and a folder holding someone else's files is
left alone. Each run gets a DDS domain of its own."""
import csv
import json
import os
from pathlib import Path
import re
import subprocess
import sys

from graph_launch import launcher_env
import pytest

for module in ('sim_node', 'policy_node', 'task_node', 'recorder_node'):
    pytest.importorskip(f'llara_policy.ros.{module}', reason=f'{module} not in this checkout')
highlevel = pytest.importorskip('rosbags.highlevel')
Image = pytest.importorskip('PIL.Image')

from llara_bringup import graphs  # noqa: E402
from llara_bringup.demo import (  # noqa: E402
    DemoError,
    check_policy_dir,
    default_policy_dir,
    launcher_command,
    parse_args,
    policy_dtype,
)
from llara_policy.model.tiny_models import save_tiny_llava  # noqa: E402
from llara_policy.ros.sim_node import SimNodeConfig, env_config  # noqa: E402
from llara_policy.sim.episode import Partition  # noqa: E402
from llara_training import eval_agents  # noqa: E402
from llara_training.eval_config import EvalConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 300  # measured ~20 s on 2 busy cores: two graphs of 2 episodes each
TASKS = ('visual_manipulation', 'rotate')
TOTAL = re.compile(r'success: (\d+)/(\d+)$')
# A launcher's table row as streamed by the demo, e.g. "[oracle] rotate   1/1   100%".
LAUNCHER_ROW = re.compile(r'\[(policy|oracle)\] (\S+)\s+(\d+/\d+)\s+\d+%$')
# The demo's combined row: task, policy K/N and rate, oracle K/N and rate.
DEMO_ROW = re.compile(r'(\S+)\s+(\d+/\d+)\s+\d+%\s+(\d+/\d+)\s+\d+%$')
# (samples, aux, success, episodes): two points with aux, three without.
CURVE = [(1000, 'true', 1, 10), (4000, 'true', 4, 10), (1000, 'false', 0, 10),
         (4000, 'false', 2, 10), (16000, 'false', 3, 10)]


def run_demo(*args: str, domain_seed: int, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'llara_bringup.demo', *args], cwd=cwd,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          env=launcher_env(domain_seed))


def bag_counts(bag: Path) -> dict[str, int]:
    """Messages per topic of the bag, counted with rosbags alone."""
    counts: dict[str, int] = {}
    with highlevel.AnyReader([bag]) as reader:
        for connection, _, _ in reader.messages():
            topic = connection.topic.strip('/')
            counts[topic] = counts.get(topic, 0) + 1
    return counts


@pytest.fixture(scope='module')
def tiny_policy(tmp_path_factory) -> Path:
    policy = save_tiny_llava(tmp_path_factory.mktemp('demo') / 'tiny_policy')
    with open(policy / 'aux_curve.csv', 'w', newline='') as file:
        writer = csv.writer(file)
        writer.writerow(['samples', 'aux', 'success', 'episodes'])
        writer.writerows(CURVE)
    return policy


def test_demo_prints_both_runs_tables_and_the_gif_has_one_frame_per_plan(tiny_policy, tmp_path):
    out = tmp_path / 'demo_out'
    done = run_demo('--policy', str(tiny_policy), '--tasks', ','.join(TASKS), '--episodes', '1',
                    '--out', str(out), domain_seed=os.getpid() + 31, cwd=tmp_path)
    report = done.stdout[-5000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    lines = done.stdout.splitlines()

    # The launchers' own tables, as streamed with their prefixes.
    launched = {(m[1], m[2]): m[3] for m in map(LAUNCHER_ROW.match, lines) if m}
    assert {task for _, task in launched} == set(TASKS), report
    policy_total = [line for line in lines if line.startswith('[policy] success: ')]
    assert len(policy_total) == 1, report
    # The combined table: one row per task, columns as the launchers printed them.
    rows = {m[1]: (m[2], m[3]) for m in map(DEMO_ROW.match, lines) if m}
    assert rows == {task: (launched[('policy', task)], launched[('oracle', task)])
                    for task in TASKS}, report
    assert rows['visual_manipulation'][1] == '1/1'  # the oracle solves the sim's task
    assert lines[-1] == policy_total[0].removeprefix('[policy] '), report
    assert TOTAL.match(lines[-1])

    # The GIF: one frame per policy/plan of the bag; queries without a plan are listed.
    counts = bag_counts(out / 'bag')
    assert counts.get('policy/plan', 0) >= 1, counts  # template answers always parse
    with Image.open(out / 'demo.gif') as gif:
        assert gif.n_frames == counts['policy/plan'], (counts, report)
    summary = re.search(r'(\d+) frames, .*; (\d+) plans without their camera frame, (\d+) '
                        r'queries without a plan', done.stdout)
    assert summary, report
    frames, _, unplanned = map(int, summary.groups())
    assert frames == counts['policy/plan']
    assert frames + unplanned == counts['policy/query'], (counts, report)
    # No task/result without its episode: one per episode of the policy run.
    assert counts['task/result'] == len(TASKS), counts

    results = json.loads((out / 'results.json').read_text())
    assert [(e['task'], e['seed']) for e in results['oracle']['episodes']] == [
        (e['task'], e['seed']) for e in results['policy']['episodes']] == [
        (task, 1_000_000) for task in TASKS]  # the same seeds for policy and oracle
    assert results['gif']['frames'] == counts['policy/plan']
    with_aux = sum(aux == 'true' for _, aux, _, _ in CURVE)
    assert f'{with_aux} points with aux, {len(CURVE) - with_aux} without' in done.stdout, report
    assert (out / 'success.png').is_file() and (out / 'aux_curve.png').is_file()


@pytest.mark.parametrize('task', TASKS)
def test_the_demo_graph_runs_the_evaluators_episode_protocol(monkeypatch, task):
    # The demo's own command line for the policy run, resolved as the launcher resolves it.
    args = parse_args(['--policy', '/p', '--tasks', task, '--seed', '3'])
    command = launcher_command(args, '/p', '')
    assert command[3] == 'sim.launch.py'
    given = dict(item.split(':=', 1) for item in command[4:])
    nodes = {node.name: node.parameters for node in graphs.resolve(graphs.SIM, given)}
    # LLaRA's evaluation: at most 8 queries per episode (eval/eval-llara.py max_steps), the
    # evaluator's default too.
    evaluator = EvalConfig(policy='oracle', out='unused', tasks=(task,), renderer='tiny',
                           seed=1_000_003)
    assert nodes['task_node']['max_steps'] == 8 == evaluator.max_steps
    # The sim env sim_node makes from its parameters is the one the evaluator makes for the
    # same episode (caught before any world is built).
    made = []
    monkeypatch.setattr(eval_agents, 'SimEnv', made.append)
    ((partition, _, seed),) = evaluator.items()[:1]
    eval_agents.make_env(evaluator, partition, task)
    assert nodes['sim_node']['seed'] == seed
    graph_env = env_config(SimNodeConfig(**nodes['sim_node']))
    assert graph_env == made[0]
    assert graph_env.bonus_steps == 8 and graph_env.partition is Partition.PLACEMENT


def test_a_missing_policy_folder_is_named_and_nothing_runs(tmp_path):
    missing = tmp_path / 'no_such_policy'
    done = run_demo('--policy', str(missing), '--out', str(tmp_path / 'out'),
                    domain_seed=os.getpid() + 32, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert str(missing) in done.stderr and 'does not exist' in done.stderr
    assert '[policy]' not in done.stdout  # no launcher was started
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize(('seed', 'episodes', 'ok'), [
    (0, 10, True), (999_990, 10, True), (999_991, 10, False), (1_000_000, 1, False)])
def test_seed_and_episodes_must_stay_in_the_test_seeds(capsys, seed, episodes, ok):
    # --seed is an offset from the first test seed, 1,000,000 (VIMA-Bench's test seeds are
    # 1,000,000..1,999,999): the last episode's seed must stay below 2,000,000.
    argv = ['--seed', str(seed), '--episodes', str(episodes)]
    if ok:
        assert parse_args(argv).seed == seed
        return
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert f'{1_000_000 + seed + episodes - 1:,}' in message and '1,999,999' in message


def test_the_missing_shipped_policy_error_points_to_the_recipe(tmp_path):
    shipped = tmp_path / 'models' / 'demo_policy'
    with pytest.raises(DemoError) as raised:
        check_policy_dir(shipped, shipped=True)
    message = str(raised.value)
    assert str(shipped) in message
    recipe = re.search(r'--config (\S+)', message)
    assert recipe and (REPO / recipe[1]).is_file(), message  # the hint names a real file


def test_a_failing_launcher_makes_the_demo_fail_with_its_report(tiny_policy, tmp_path):
    done = run_demo('--policy', str(tiny_policy), '--partition', 'no_such_partition',
                    '--episodes', '1', '--out', str(tmp_path / 'out'),
                    domain_seed=os.getpid() + 33, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr
    assert 'the policy run failed' in done.stderr
    assert "got 'no_such_partition'" in done.stderr  # sim_node's own reason, passed on
    assert not TOTAL.match(done.stdout.splitlines()[-1])


def test_a_folder_with_files_the_demo_did_not_write_is_refused(tiny_policy, tmp_path):
    out = tmp_path / 'out'
    (out / 'bag').mkdir(parents=True)
    (out / 'bag' / 'keep.txt').write_text("not the demo's")
    done = run_demo('--policy', str(tiny_policy), '--out', str(out),
                    domain_seed=os.getpid() + 34, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert str(out) in done.stderr and 'bag' in done.stderr
    assert (out / 'bag' / 'keep.txt').read_text() == "not the demo's"


def test_the_policy_runs_in_the_dtype_its_report_was_measured_in(tmp_path):
    # On a CPU with native bf16, 'auto' is bfloat16 while the recipe evaluates in float32:
    # the demo would then not run the model its report measured.
    args = parse_args(['--policy', str(tmp_path)])
    assert args.dtype == 'report'
    assert policy_dtype(tmp_path, args.dtype) == 'auto'  # no recipe config: the node decides
    (tmp_path / 'recipe_config.yaml').write_text('evaluate:\n  dtype: bfloat16\n')
    assert policy_dtype(tmp_path, 'report') == 'bfloat16'
    assert policy_dtype(tmp_path, 'float16') == 'float16'  # an explicit choice wins
    args.dtype = policy_dtype(tmp_path, args.dtype)
    command = launcher_command(args, str(tmp_path), '')
    given = dict(item.split(':=', 1) for item in command[4:])
    nodes = {node.name: node.parameters for node in graphs.resolve(graphs.SIM, given)}
    assert nodes['policy_node']['dtype'] == 'bfloat16'
    (tmp_path / 'recipe_config.yaml').write_text('evaluate:\n  dtype: float64\n')
    with pytest.raises(DemoError, match='float64'):
        policy_dtype(tmp_path, 'report')
    with pytest.raises(SystemExit):
        parse_args(['--dtype', 'int4'])


def test_the_shipped_policy_was_evaluated_in_the_dtype_the_demo_uses():
    # The recipe's evaluate.dtype, written into the shipped folder by --ship.
    assert policy_dtype(default_policy_dir(), 'report') == 'float32'
