"""The task registry: VIMA task name -> task class (a plain dict, as ravens' `tasks.names`).

Tasks implemented so far follow VIMA-Bench's names and prompt templates; `TRAIN_TASKS` lists
those VIMA trains on (train.yaml) that the sim has.
"""
from llara_policy.errors import SimError
from llara_policy.sim.task_base import Task
from llara_policy.sim.task_suite import (
    PickInOrderThenRestore,
    Rearrange,
    Rotate,
    SameShape,
    SceneUnderstanding,
    VisualManipulation,
)
from llara_policy.sim.task_sweep import SweepWithoutExceeding

TASKS: dict[str, type[Task]] = {task.name: task for task in (
    VisualManipulation, Rotate, SceneUnderstanding, Rearrange, PickInOrderThenRestore,
    SameShape, SweepWithoutExceeding)}


def make_task(name: str) -> Task:
    """Return a new task by its VIMA name; SimError lists the known names."""
    if name not in TASKS:
        raise SimError(f'unknown task {name!r}; known: {", ".join(sorted(TASKS))}')
    return TASKS[name]()
