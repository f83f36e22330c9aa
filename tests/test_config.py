import pytest
from hydra.utils import instantiate

from conftest import CONF
from mnistlab.config import ConfigError, pick_device, validate
from mnistlab.models import MLP, LeNet5


def test_default_config_is_valid_and_instantiates(make_cfg):
    cfg = make_cfg()
    validate(cfg)
    assert isinstance(instantiate(cfg.model), LeNet5)
    optimizer = instantiate(cfg.optimizer)(params=instantiate(cfg.model).parameters())
    assert type(optimizer).__name__ == "SGD" and optimizer.defaults["nesterov"]


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_take_the_fused_update_on_cpu_unless_told_otherwise(make_cfg, name):
    import torch

    from mnistlab.train import make_optimizer

    model = instantiate(make_cfg().model)
    assert make_optimizer(make_cfg(f"optimizer={name}"), model, torch.device("cpu")).defaults["fused"] is True
    assert not make_optimizer(make_cfg(f"optimizer={name}", "optimizer.fused=false"), model, torch.device("cpu")).defaults["fused"]


def test_group_overrides_compose(make_cfg):
    cfg = make_cfg("model=mlp", "optimizer=adam", "regularization.dropout=0.2")
    validate(cfg)
    model = instantiate(cfg.model)
    assert isinstance(model, MLP) and model.net[3].p == 0.2
    assert type(instantiate(cfg.optimizer)(params=model.parameters())).__name__ == "Adam"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_preset_composes_and_validates(make_cfg, experiment):
    cfg = make_cfg(f"experiment={experiment}")
    validate(cfg)
    instantiate(cfg.model)


def test_regularization_flows_into_model_and_optimizer(make_cfg):
    cfg = make_cfg("regularization=dropout_wd")
    assert cfg.model.dropout == 0.2 and cfg.optimizer.weight_decay == 5e-4


@pytest.mark.parametrize(
    "override,key",
    [
        ("regularization.dropout=1.5", "regularization.dropout"),
        ("regularization.dropout=-0.1", "regularization.dropout"),
        ("regularization.weight_decay=-1", "regularization.weight_decay"),
        ("optimizer.lr=0", "optimizer.lr"),
        ("optimizer.lr=-0.1", "optimizer.lr"),
        ("trainer.epochs=0", "trainer.epochs"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("trainer.device=tpu", "trainer.device"),
        ("data.val_size=60000", "data.val_size"),
        ("regularization.label_smoothing=1", "regularization.label_smoothing"),
        ("regularization.augment.rotation=-5", "regularization.augment.rotation"),
        ("trainer.epochs=abc", "trainer.epochs"),
        ("regularization.keep_best=true", "regularization.keep_best"),
        ("trainer.cuda_graph=maybe", "trainer.cuda_graph"),
        ("trainer.amp=yes", "trainer.amp"),
    ],
)
def test_bad_values_fail_naming_the_key(make_cfg, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(make_cfg(override))


def test_unavailable_device_is_explained():
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device("cuda")
    assert pick_device("cpu").type == "cpu"
