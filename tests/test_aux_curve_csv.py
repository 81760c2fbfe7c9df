"""The recipe's aux_curve.csv stays readable by the demo: with or without the grounding columns.

`recipe_report.write_curve` appends 'picks_on_target', 'model_steps' and 'places_on_target'
after the columns `demo_media.read_aux_curve` reads; a csv written before them (the shipped
curves) still reads.
"""
import csv

from llara_bringup.demo_media import CurvePoint, read_aux_curve
from llara_training.recipe_report import CURVE_COLUMNS, write_curve

OLD_COLUMNS = ('samples', 'aux', 'success', 'episodes', 'train_episodes_per_task',
               'train_episodes', 'steps', 'samples_seen', 'success_all_tasks',
               'episodes_all_tasks')


def curve_row(samples: int, aux: bool, success: int, picks: int) -> dict:
    return {'samples': samples, 'aux': 'true' if aux else 'false', 'success': success,
            'episodes': 30, 'train_episodes_per_task': samples // 2, 'train_episodes': samples,
            'steps': 100, 'samples_seen': 800, 'success_all_tasks': success,
            'episodes_all_tasks': 60, 'picks_on_target': picks, 'model_steps': 90,
            'places_on_target': 30}


def test_a_new_curve_with_picks_on_target_reads(tmp_path):
    rows = [curve_row(8, True, 1, 40), curve_row(8, False, 0, 12)]
    csv_path = write_curve(tmp_path, rows)[0]
    with open(csv_path, newline='') as handle:
        assert 'picks_on_target' in next(csv.reader(handle))
    assert read_aux_curve(csv_path) == [CurvePoint(8, True, 1, 30), CurvePoint(8, False, 0, 30)]


def test_an_old_curve_without_the_column_still_reads(tmp_path):
    assert set(OLD_COLUMNS) < set(CURVE_COLUMNS)
    path = tmp_path / 'aux_curve.csv'
    with open(path, 'w', newline='') as handle:
        writer = csv.DictWriter(handle, OLD_COLUMNS, extrasaction='ignore')
        writer.writeheader()
        writer.writerow(curve_row(16, True, 2, 0))
    assert read_aux_curve(path) == [CurvePoint(16, True, 2, 30)]
