"""Lightning Fabric: the plain loop's structure with Fabric's device, precision and data-parallel plumbing, trained
to the plain loop's bits (its DDP cell is in test_ddp's batch); a task without a Fabric loop is refused in one line."""

import pytest

from loopbench.cli import main
from loopbench.core.precision import PRECISIONS
from tests.helpers import assert_bitwise_parity


@pytest.mark.parametrize("precision", PRECISIONS)
def test_fabric_trains_the_plain_loops_bits_on_cifar(precision):
    # 8 batches of 32 images an epoch (smoke): 10 steps cross the boundary
    plain, fabric = assert_bitwise_parity("cifar_cnn", "fabric", precision=precision, steps=10)
    assert fabric.config["impl"] == "fabric" and fabric.metrics == plain.metrics
    assert fabric.precision_via.startswith("Fabric(") and "autocast" not in fabric.precision_via


def test_a_task_without_a_fabric_loop_is_refused_in_one_line(capsys):
    assert main(["run", "--task", "mnist_gan", "--impl", "fabric", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("task mnist_gan has no fabric implementation (fabric_loop.py)") and len(err.splitlines()) == 1
