import pytest
import torch

from implementations.common import batches, one_cycle, train_loader


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 7, 20])
def test_one_cycle_accepts_any_run_length(steps):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = one_cycle(opt, 0.1, steps, pct_start=0.25)
    for _ in range(steps):
        opt.step()
        sched.step()
    assert 0 < opt.param_groups[0]["lr"] <= 0.1


def test_batches_cross_epochs_without_an_extra_shuffle():
    """Iterating 2.5 epochs leaves the loader's generator where 3 fresh epoch iterators leave it."""
    data = torch.utils.data.TensorDataset(torch.arange(10.0))
    loader = train_loader(data, batch_size=4, seed=0)  # 2 batches per epoch (drop_last)
    seen = [b[0].tolist() for b in batches(loader, 5)]
    assert len(seen) == 5 and all(len(b) == 4 for b in seen)

    twin = train_loader(data, batch_size=4, seed=0)
    expected = []
    for _ in range(3):
        it = iter(twin)
        expected += [next(it)[0].tolist() for _ in range(2)]
    assert seen == expected[:5]
    assert torch.equal(loader.generator.get_state(), twin.generator.get_state())


def test_batches_refuses_a_batch_larger_than_the_data():
    loader = train_loader(torch.utils.data.TensorDataset(torch.arange(3.0)), batch_size=4, seed=0)
    with pytest.raises(ValueError, match="lower --batch-size"):
        list(batches(loader, 1))


def test_generated_data_is_cached_on_disk_and_read_back_equal(tmp_path, monkeypatch):
    from implementations.settings import task_config
    from loopbench.core.types import DataSource, RunConfig
    from loopbench.launch.cell import build_data

    monkeypatch.setenv("LOOPBENCH_CACHE", str(tmp_path))
    cfg = task_config(RunConfig("mnist_gan", "pytorch"))
    made = build_data("mnist_gan", cfg, DataSource("synthetic", None))
    (cached,) = tmp_path.iterdir()
    read = build_data("mnist_gan", cfg, DataSource("synthetic", None))
    assert torch.equal(made.train.tensors[0], read.train.tensors[0]) and made.info == read.info
    cached.write_bytes(b"partial")  # a damaged file is regenerated, not trusted
    assert torch.equal(
        build_data("mnist_gan", cfg, DataSource("synthetic", None)).test.tensors[0], made.test.tensors[0]
    )
    monkeypatch.setenv("LOOPBENCH_CACHE", "off")
    other = task_config(RunConfig("mnist_gan", "pytorch", overrides={"data_seed": 1}))
    build_data("mnist_gan", other, DataSource("synthetic", None))
    assert len(list(tmp_path.iterdir())) == 1  # off: nothing written
