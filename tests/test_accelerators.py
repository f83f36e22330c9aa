"""Speed options: what happens on a CPU (accepted, applied or ignored) and, where CUDA exists, the graphed step."""

import logging
import math

import pytest
import torch

from conftest import new_dir, run_interrupted_then_resumed, settings
from mnistlab.config import check
from mnistlab.config.schema import TrainerSettings
from mnistlab.errors import ConfigError
from mnistlab.models import LeNet5
from mnistlab.runs import task
from mnistlab.training import speed
from mnistlab.training.cuda_graph import make_capturable, portable_state
from mnistlab.training.schedules import onecycle
from mnistlab.training.speed import prepare_model, speed_settings
from mnistlab.training.techniques import RandomWarp
from mnistlab.training.trainer import Trainer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def lenet_trainer(data, seed=0, optimizer="sgd", batch_norm=False, dropout=0.0, augment=None, **trainer):
    torch.manual_seed(seed)
    trainer = {"batch_size": 64, "epochs": 2, **trainer}
    run = settings(**trainer)
    model = prepare_model(LeNet5(batch_norm=batch_norm, dropout=dropout), run, data.train.images.device)
    if optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    steps = math.ceil(len(data.train) / trainer["batch_size"])
    scheduler = onecycle(optimizer, trainer["epochs"] * steps, steps)
    warp = [RandomWarp(**augment)] if augment else []
    return Trainer(model, optimizer, scheduler, data, run, torch.nn.CrossEntropyLoss(), seed=seed, techniques=warp)


def test_cuda_only_options_are_dropped_off_cuda(caplog, monkeypatch):
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.INFO, logger=speed.log.name):
        resolved = speed_settings(TrainerSettings(cuda_graph=True, amp=True, compile=True), torch.device("cpu"))
    assert resolved.cuda_graph is False and resolved.compile is False and resolved.amp is False
    assert "trainer.amp (bf16 autocast) needs CUDA or a CPU with native bf16; ignored on cpu" in caplog.text
    assert "trainer.cuda_graph applies on CUDA only; ignored on cpu" in caplog.text
    assert "trainer.compile applies on CUDA only; ignored on cpu" in caplog.text
    assert speed_settings(TrainerSettings(amp=True), torch.device("mps")).amp is False


def test_amp_on_cpu_without_channels_last_gets_a_hint(monkeypatch, caplog):
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: True)
    with caplog.at_level(logging.INFO, logger=speed.log.name):
        assert speed_settings(TrainerSettings(amp=True), torch.device("cpu")).amp is True
    assert "trainer.amp without trainer.channels_last" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=speed.log.name):
        speed_settings(TrainerSettings(amp=True, channels_last=True), torch.device("cpu"))
    assert "channels_last" not in caplog.text


def test_threads_follow_the_setting_or_the_launchers_share(monkeypatch):
    """On an 8-core machine: all 8, or each job's share, capped by submitit's and SLURM's allocation."""
    monkeypatch.setattr(speed, "TORCH_THREADS", 8)
    monkeypatch.setattr(speed.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    before = torch.get_num_threads()
    try:
        assert speed.set_threads(None) == 8
        assert speed.set_threads(None, 2) == 4  # joblib's n_jobs=2
        assert speed.set_threads(None, 3) == 2
        assert speed.set_threads(None, -1) == 1  # joblib's n_jobs=-1: every core busy with a job
        assert speed.set_threads(None, None, cpus_per_task=3) == 3  # submitit's cpus_per_task
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
        assert speed.set_threads(None) == 2  # SLURM's allocation
        assert speed.set_threads(3) == 3  # trainer.threads wins
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not speed.cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_autocast_on_cpu_trains_in_mixed_precision(tiny_data):
    trainer = lenet_trainer(tiny_data, amp=True, channels_last=True)
    x = tiny_data.train.images[:64]
    with trainer._autocast():
        assert trainer.model(x.contiguous(memory_format=torch.channels_last)).dtype == torch.bfloat16
    result = trainer.fit()
    assert result.status == "completed" and all(math.isfinite(r["train_loss"]) for r in result.history)


def test_capturable_sgd_reads_its_lr_from_a_tensor_the_scheduler_updates():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = onecycle(optimizer, total_steps=10, steps_per_epoch=5)
    make_capturable(optimizer, torch.device("cpu"))
    group = optimizer.param_groups[0]
    lr = group["lr"]
    assert group["fused"] and isinstance(lr, torch.Tensor)
    twin = torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=0.1, momentum=0.9)
    expected = onecycle(twin, total_steps=10, steps_per_epoch=5)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    twin.step()
    expected.step()
    assert group["lr"] is lr and lr.item() == pytest.approx(twin.param_groups[0]["lr"])  # the same tensor, written in place


def test_optimizers_that_cannot_be_captured_are_named():
    optimizer = torch.optim.LBFGS(torch.nn.Linear(3, 2).parameters())
    with pytest.raises(ConfigError, match="trainer.cuda_graph cannot capture LBFGS"):
        make_capturable(optimizer, torch.device("cpu"))


def test_checkpointed_optimizer_state_is_portable():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    make_capturable(optimizer, torch.device("cpu"))
    state = portable_state(optimizer.state_dict())
    assert isinstance(state["param_groups"][0]["lr"], float) and state["param_groups"][0]["capturable"] is False
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.5)
    fresh.load_state_dict(state)
    loaded = fresh.param_groups[0]
    assert isinstance(loaded["lr"], float) and loaded["capturable"] is False
    fresh.step()  # loads and steps on a CPU, where the captured CUDA state would not


# ---------------------------------------------------------------- CUDA only


@cuda
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_graphed_steps_compute_what_eager_steps_compute(tiny_data, optimizer):
    """Same optimizer kernels, deterministic algorithms: replays (and the eager last batch) follow the eager run, lr schedule included."""
    data, weights = _on_cuda(tiny_data), []
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        for graph in (False, True):
            trainer = lenet_trainer(data, optimizer=optimizer, batch_norm=True, cuda_graph=graph, epochs=3, batch_size=48)
            if not graph:
                make_capturable(trainer.optimizer, trainer.device)
            assert trainer.fit().status == "completed"
            assert (trainer.graphed is not None and trainer.graphed.graph is not None) == graph
            weights.append(torch.cat([p.detach().flatten() for p in trainer.model.parameters()]))
    finally:
        torch.use_deterministic_algorithms(False)
    torch.testing.assert_close(weights[1], weights[0], rtol=1e-4, atol=1e-5)


def test_warm_up_leaves_weights_buffers_gradients_and_random_streams_alone(tiny_data):
    affine = {"rotation": 10, "translate": 0.1, "scale": 0.1}
    trainer = lenet_trainer(tiny_data, batch_norm=True, dropout=0.3, augment=affine, batch_size=100, eval_batch_size=50)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rng, generator = torch.get_rng_state(), trainer.generator.get_state()
    assert trainer.warm_up() == 0.0  # only on CUDA unless forced
    assert trainer.warm_up(force=True) > 0
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state()) and torch.equal(generator, trainer.generator.get_state())
    assert all(p.grad is None for p in trainer.model.parameters())


@cuda
def test_graphed_run_with_augmentation_dropout_and_amp_learns(tiny_data):
    affine = {"rotation": 10, "translate": 0.1, "scale": 0.1}
    trainer = lenet_trainer(_on_cuda(tiny_data), cuda_graph=True, amp=True, channels_last=True, dropout=0.2, augment=affine, epochs=4)
    result = trainer.fit()
    assert trainer.graphed.graph is not None
    assert result.status == "completed" and result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@cuda
def test_graphed_run_resumes_after_an_interruption(make_cfg, tmp_path, monkeypatch):
    overrides = ["trainer.epochs=2", "run.plots=false", "trainer.cuda_graph=true", "trainer.device=cuda", "seed=1"]
    full = task.run(make_cfg(*overrides), new_dir(tmp_path / "full"))
    stopped, resumed = run_interrupted_then_resumed(make_cfg, overrides, tmp_path / "part", monkeypatch)
    assert stopped["status"] == "interrupted"
    assert resumed["status"] == "completed" and resumed["epochs_run"] == 2
    assert resumed["final_test_acc"] == pytest.approx(full["final_test_acc"], abs=0.3)


def _on_cuda(data):
    from mnistlab.data.batches import DeviceData, Split

    return DeviceData(
        train=Split(data.train.images.cuda(), data.train.labels.cuda()), test=Split(data.test.images.cuda(), data.test.labels.cuda())
    )


def test_cuda_graph_auto_means_on_cuda_only(make_cfg):
    trainer = check(make_cfg()).trainer
    assert trainer.cuda_graph == "auto"
    assert speed_settings(trainer, torch.device("cpu")).cuda_graph is False
    assert speed_settings(trainer, torch.device("cuda")).cuda_graph is True


def test_cuda_graph_auto_leaves_a_compiled_model_to_torch_compile():
    assert speed_settings(TrainerSettings(compile=True), torch.device("cuda")).cuda_graph is False
    assert speed_settings(TrainerSettings(compile=True, cuda_graph=True), torch.device("cuda")).cuda_graph is True
