"""Evaluation results on disk: LLaRA's results JSON, a markdown table and a bar chart.

`results.json` has LLaRA's layout (`LostXine/LLaRA:results/*.json`, llara-spec 5.1): key
`global` (the run's arguments) and one entry per `<partition>/<task>/<seed>`; it is rewritten
(atomically) after every episode, so a killed run resumes by skipping the tids it holds, as
LLaRA's eval does. A file is resumed only by a run with the same protocol
(`eval_config.PROTOCOL_KEYS`); the episode count, tasks, partitions and workers may change.
`results.md` and `success.png` summarise every entry in the file per task and partition;
results.md's second table says what the executed model steps' picks and places land on
(`eval_grounding`); entries written before those fields existed count as not recorded.
"""
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import json
import math
import os
from pathlib import Path

from llara_policy.errors import ConfigError
from llara_training.eval_config import LEVEL_OF, LEVELS, PROTOCOL_KEYS, rate_text
from llara_training.eval_grounding import (
    NONE,
    OTHER,
    TARGET,
    UNKNOWN,
    GroundingCounts,
    count_grounding,
)

RESULTS_JSON = 'results.json'
RESULTS_MD = 'results.md'
RESULTS_PNG = 'success.png'
ERRORS_JSON = 'errors.json'
GLOBAL = 'global'


def write_json(path: Path, data) -> None:
    """Write JSON (indent 2, as LLaRA's save_json) through a temporary file and a rename."""
    temporary = path.with_name(path.name + '.tmp')
    temporary.write_text(json.dumps(data, indent=2) + '\n')
    os.replace(temporary, path)


class ResultStore:
    """The results JSON of one output directory."""

    def __init__(self, out: str | Path, global_args: dict):
        self.root = Path(out)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / RESULTS_JSON
        self.data = {}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, ValueError) as error:
                raise ConfigError(f'cannot read {str(self.path)!r}: {error}') from error
            if not isinstance(self.data, dict):
                raise ConfigError(f'{str(self.path)!r} is not a results file (not a mapping)')
            _check_protocol(self.path, self.data.get(GLOBAL, {}), global_args)
        self.resumed = len(self.entries())
        self.data[GLOBAL] = global_args
        write_json(self.path, self.data)

    def __contains__(self, episode_tid: str) -> bool:
        return episode_tid in self.data and episode_tid != GLOBAL

    def add(self, entry: dict) -> None:
        """Store one finished episode and rewrite the file."""
        self.data[entry['tid']] = entry
        write_json(self.path, self.data)

    def entries(self) -> list[dict]:
        """Every episode entry, in file order."""
        return [value for key, value in self.data.items() if key != GLOBAL]


def _check_protocol(path: Path, saved: dict, current: dict) -> None:
    changed = [key for key in PROTOCOL_KEYS if key in saved and saved[key] != current[key]]
    missing = [key for key in PROTOCOL_KEYS if key not in saved]
    if changed or missing:
        details = ', '.join(f'{key} {saved.get(key)!r} -> {current[key]!r}'
                            for key in changed + missing)
        raise ConfigError(f'{str(path)!r} holds results of another protocol ({details}); '
                          'use another --out to keep both')


@dataclass(frozen=True)
class Row:
    """Aggregates of one task in one partition, or of a whole partition (task 'all').

    `grounding`: what its executed model steps' picks and places land on.
    """

    level: str
    task: str
    episodes: int
    successes: int
    queries: int
    parse_failures: int
    random_actions: int
    rejected_actions: int
    grounding: GroundingCounts

    @property
    def rate_pct(self) -> float:
        """Success rate in percent."""
        return 100.0 * self.successes / self.episodes if self.episodes else math.nan


def _row(level: str, task: str, entries: Sequence[dict]) -> Row:
    return Row(level, task, len(entries), sum(bool(e['success']) for e in entries),
               sum(len(e['lm_answer_hist']) for e in entries),
               sum(len(e.get('parse_failures', ())) for e in entries),
               sum(e.get('random_actions', 0) for e in entries),
               sum(e.get('rejected_actions', 0) for e in entries), count_grounding(entries))


def aggregate(entries: Iterable[dict]) -> tuple[list[Row], list[Row]]:
    """Per (partition, task) rows in partition order L1..L4 then first appearance; per partition.

    A partition's rate is successes / episodes (LLaRA's; the task mean when every task has the
    same number of episodes).
    """
    groups: dict[str, dict[str, list[dict]]] = {}
    for entry in entries:
        groups.setdefault(entry['level'], {}).setdefault(entry['task'], []).append(entry)
    order = [p.value for p in LEVELS.values() if p.value in groups] + sorted(
        set(groups) - {p.value for p in LEVELS.values()})
    task_rows, partition_rows = [], []
    for level in order:
        short = _short(level)
        task_rows.extend(_row(short, task, group) for task, group in groups[level].items())
        partition_rows.append(_row(short, 'all', [e for g in groups[level].values() for e in g]))
    return task_rows, partition_rows


def _short(level: str) -> str:
    return next((LEVEL_OF[p] for p in LEVELS.values() if p.value == level), level)


def markdown(task_rows: Sequence[Row], partition_rows: Sequence[Row], global_args: dict) -> str:
    """Write the results table: a row per task and partition, then one per partition."""
    lines = [f"# Closed-loop evaluation: {global_args['policy']}", '',
             f"env `{global_args['env']}`, prompt mode `{global_args['prompt_mode']}`, prompt id "
             f"{global_args['prompt_id']}, decoder `{global_args['decoder']}` "
             f"({global_args['decoding']}), at most {global_args['max_steps']} steps, "
             f"parse failures -> {global_args['on_parse_failure']}", '',
             '| partition | task | success % (successes/episodes) | queries / episode | '
             'parse failures | random actions | rejected actions |',
             '|---|---|---|---|---|---|---|']
    for row in (*task_rows, *partition_rows):
        task = '**all**' if row.task == 'all' else row.task
        lines.append(f'| {row.level} | {task} | {rate_text(row.successes, row.episodes)} | '
                     f'{row.queries / row.episodes:.2f} | {row.parse_failures} | '
                     f'{row.random_actions} | {row.rejected_actions} |')
    if partition_rows:
        successes = sum(r.successes for r in partition_rows)
        episodes = sum(r.episodes for r in partition_rows)
        lines += ['', f'All episodes: {rate_text(successes, episodes)}.']
    return '\n'.join(lines + grounding_markdown([*task_rows, *partition_rows])) + '\n'


def grounding_markdown(rows: Sequence[Row]) -> list[str]:
    """Write the grounding table: per row, where executed model steps' picks and places land."""
    lines = ['', '## Grounding: what the model steps pick and place on', '',
             'Per executed model step, the object under its pick point and under its place '
             "point (or within the place object's outline) in the frame the answer was made on. "
             'Pick target: the object the task moves; place target: the base it names (rotate '
             'and rearrange have none). Other: another object; nothing: the table. Unknown: '
             'the env gives no task roles (VIMA-Bench). Random fallback actions and rejected '
             'steps are not counted (rejected ones are recorded in results.json); not recorded: '
             'executed model steps of results written before these fields existed. First '
             "answers: each episode's first executed model step alone (the scene as the task "
             'set it, no history in the prompt).', '',
             '| partition | task | model steps | picks on target | picks on other | '
             'picks on nothing | places on target base | places on other | places on nothing '
             '| unknown (picks / places) | not recorded | rejected | first answers: picks on '
             'target | first answers: places on target base |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        counts = row.grounding
        task = '**all**' if row.task == 'all' else row.task
        cells = [_grounding_cell(counts, 'pick', relation) for relation in (TARGET, OTHER, NONE)]
        cells += [_grounding_cell(counts, 'place', relation)
                  for relation in (TARGET, OTHER, NONE)]
        unknown = f'{counts.picks[UNKNOWN]} / {counts.places[UNKNOWN]}'
        first = [_grounding_cell(counts, side, TARGET, first=True) for side in ('pick', 'place')]
        lines.append(f'| {row.level} | {task} | {counts.model_steps} | {" | ".join(cells)} | '
                     f'{unknown} | {counts.not_recorded} | {counts.rejected} | '
                     f'{" | ".join(first)} |')
    return lines


def _grounding_cell(counts: GroundingCounts, side: str, relation: str,
                    first: bool = False) -> str:
    steps = counts.first_steps if first else counts.model_steps
    if steps == 0:
        return 'not recorded' if counts.not_recorded else '-'
    if side == 'place' and relation == TARGET and not counts.place_target:
        return 'no base'
    if first:
        count = (counts.first_picks if side == 'pick' else counts.first_places)[relation]
    else:
        count = (counts.picks if side == 'pick' else counts.places)[relation]
    return rate_text(count, steps)


def bar_chart(task_rows: Sequence[Row], path: Path, title: str) -> Path:
    """Success % per task, one bar per partition in each task's group (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use('Agg')  # files only, no display
    from matplotlib import pyplot

    tasks = list(dict.fromkeys(row.task for row in task_rows))
    levels = list(dict.fromkeys(row.level for row in task_rows))
    by_key = {(row.level, row.task): row for row in task_rows}
    width = 0.8 / max(len(levels), 1)
    figure, axis = pyplot.subplots(figsize=(max(6.0, 0.9 * len(tasks) + 2), 4.5), dpi=100)
    for index, level in enumerate(levels):
        xs = [t + (index - (len(levels) - 1) / 2) * width for t in range(len(tasks))
              if (level, tasks[t]) in by_key]
        rates = [by_key[(level, task)].rate_pct for task in tasks if (level, task) in by_key]
        axis.bar(xs, rates, width, label=level)
    axis.set_xticks(range(len(tasks)), tasks, rotation=30, ha='right')
    axis.set_ylim(0, 105)
    axis.set_ylabel('success (%)')
    axis.set_title(title)
    axis.legend(title='partition', loc='upper left', bbox_to_anchor=(1.01, 1.0))  # off the bars
    axis.grid(axis='y', alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return path


def write_reports(store: ResultStore) -> tuple[Path, Path, list[Row]]:
    """Write results.md and success.png from every entry; return their paths and partition rows."""
    task_rows, partition_rows = aggregate(store.entries())
    global_args = store.data[GLOBAL]
    md_path = store.root / RESULTS_MD
    md_path.write_text(markdown(task_rows, partition_rows, global_args))
    title = (f"{Path(str(global_args['policy'])).name} on {global_args['env']} "
             f"[{global_args['prompt_mode']}]")
    png_path = bar_chart(task_rows, store.root / RESULTS_PNG, title)
    return md_path, png_path, partition_rows
