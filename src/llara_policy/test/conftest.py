"""Fixtures shared by the arm tests: one tiny-renderer world per module, an enabled SimArm."""
import pytest

from llara_policy.arms.primitives import enable
from llara_policy.sim.arm import SimArm
from llara_policy.sim.world import SimWorld, WorldConfig
from llara_policy.workspace import Workspace


@pytest.fixture(scope='module')
def world():
    """One SimWorld (TinyRenderer) for every test of a module; reset per test by `arm`."""
    with SimWorld(WorldConfig('tiny')) as world:
        yield world


@pytest.fixture
def arm(world):
    """A SimArm on the freshly reset world, enabled under the default Workspace."""
    world.reset()
    arm = SimArm(world)
    arm.world_was_reset()
    enable(arm, Workspace())
    return arm
