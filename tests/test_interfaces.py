"""llara_msgs: generated types import, keep their constants, serialize, and are documented."""
from pathlib import Path
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
import interfaces_table  # noqa: E402  (tools/ is not a package)


def test_messages_services_and_actions_import_after_sourcing_the_env():
    from llara_msgs.action import ExecuteStep, RunTask
    from llara_msgs.msg import ActionPlan, ActionStep, PolicyStatus
    from llara_msgs.srv import ResetExecutor, StopExecutor

    assert ActionStep.EFFECTOR_SUCTION == 0 and ActionStep.EFFECTOR_SPATULA == 1
    assert PolicyStatus.STATE_ERROR == 4
    assert ExecuteStep.Result.ERROR_ARM == 5
    assert ExecuteStep.Feedback.PHASE_RETREAT == 8
    assert RunTask.Goal().max_steps == 0
    assert StopExecutor.Request().emergency is False
    assert ResetExecutor.Response().success is False
    assert ActionPlan().steps == []


def test_plan_survives_serialization_with_every_field():
    from rclpy.serialization import deserialize_message, serialize_message

    from llara_msgs.msg import ActionPlan, ActionStep

    plan = ActionPlan(instruction='Rotate the <p>red block</p> 150 degrees.',
                      raw_text='Step 1: ...', model_image_width=256, model_image_height=128,
                      inference_time_s=0.25, generated_tokens=7)
    plan.header.frame_id = 'camera_optical'
    plan.header.stamp.sec = 12
    plan.steps = [ActionStep(step_number=2, effector=ActionStep.EFFECTOR_SPATULA,
                             object_text='blue letter A', pick_x_norm=0.125,
                             pick_y_norm=1.0, place_x_norm=0.0, place_y_norm=0.5,
                             rotation_cw_deg=-359)]
    assert deserialize_message(serialize_message(plan), ActionPlan) == plan


def test_every_interface_file_is_built():
    import llara_msgs.action
    import llara_msgs.msg
    import llara_msgs.srv

    modules = {'msg': llara_msgs.msg, 'srv': llara_msgs.srv, 'action': llara_msgs.action}
    for path in sorted((ROOT / 'src' / 'llara_msgs').glob('*/*')):
        assert hasattr(modules[path.parent.name], path.stem), f'{path} is not in CMakeLists.txt'


@pytest.mark.parametrize('field', interfaces_table.all_fields(),
                         ids=lambda f: f'{f.interface}.{f.section}.{f.name}')
def test_every_field_is_documented(field):
    assert field.doc, f'{field.interface} {field.section} {field.name} has no comment'


def test_readme_interfaces_table_matches_the_interface_files():
    readme = (ROOT / 'README.md').read_text()
    begin, end = '<!-- interfaces-table:begin -->', '<!-- interfaces-table:end -->'
    assert begin in readme and end in readme, 'README lacks the interfaces table markers'
    table = readme.split(begin)[1].split(end)[0].strip()
    assert table == interfaces_table.markdown_table().strip(), \
        'README interfaces table is stale: paste the output of tools/interfaces_table.py'
