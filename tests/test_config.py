import dataclasses
import re

import pytest
import torch
import yaml
from hydra.utils import instantiate

from conftest import CONF
from mnistlab.config import check
from mnistlab.config.schema import SCHEMAS, AugmentSettings, TrainerSettings
from mnistlab.config.targets import ARGUMENT_RANGES
from mnistlab.errors import ConfigError
from mnistlab.models import LeNet5
from mnistlab.runs.assemble import Parts, make_optimizer
from mnistlab.training.speed import pick_device


def test_default_config_is_valid_and_instantiates(make_cfg):
    cfg = make_cfg()
    settings = check(cfg)
    assert isinstance(settings.trainer, TrainerSettings) and settings.trainer.epochs == 15 and settings.seed == 0
    assert isinstance(settings.regularization.augment, AugmentSettings) and not settings.regularization.augment.enabled
    assert isinstance(instantiate(cfg.model), LeNet5)
    optimizer = make_optimizer(settings.cfg.optimizer, instantiate(cfg.model), torch.device("cpu"))
    assert type(optimizer).__name__ == "SGD" and optimizer.defaults["nesterov"] and optimizer.defaults["fused"]


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_take_the_fused_update_on_cpu_unless_told_otherwise(make_cfg, name):
    model = instantiate(make_cfg().model)
    assert make_optimizer(make_cfg(f"optimizer={name}").optimizer, model, torch.device("cpu")).defaults["fused"] is True
    assert not make_optimizer(make_cfg(f"optimizer={name}", "optimizer.fused=false").optimizer, model, torch.device("cpu")).defaults[
        "fused"
    ]


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_preset_composes_and_validates(make_cfg, experiment):
    cfg = make_cfg(f"experiment={experiment}")
    check(cfg)
    instantiate(cfg.model)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "regularization").glob("*.yaml")) + ["none"])
def test_regularization_presets_set_only_regularization_keys(make_cfg, preset):
    """Groups stay orthogonal: a preset that needs other groups' keys is an experiment."""
    default, chosen = make_cfg(), make_cfg(f"regularization={preset}")
    for group in ("trainer", "data", "scheduler"):
        assert chosen[group] == default[group], group
    optimizer = {k: v for k, v in chosen.optimizer.items() if k != "weight_decay"}
    assert optimizer == {k: v for k, v in default.optimizer.items() if k != "weight_decay"}
    assert chosen.optimizer.weight_decay == chosen.regularization.weight_decay


@pytest.mark.parametrize("model", ["lenet5", "mlp"])
def test_regularization_flows_into_model_and_optimizer(make_cfg, model):
    config = check(make_cfg(f"model={model}", "optimizer=adam", "regularization=dropout_wd"))
    net = instantiate(config.cfg.model)
    assert [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.2]
    optimizer = make_optimizer(config.cfg.optimizer, net, torch.device("cpu"))
    assert type(optimizer).__name__ == "Adam" and optimizer.defaults["weight_decay"] == 5e-4


def test_best_and_early_stopping_experiments(make_cfg):
    best = check(make_cfg("experiment=best"))
    assert best.trainer.epochs == 30 and best.regularization.batch_norm and best.regularization.augment.enabled
    early = check(make_cfg("experiment=early_stopping"))
    assert early.val_size == 5000 and early.cfg.callback.keep_best.enabled and early.cfg.callback.early_stopping.patience == 4


@pytest.mark.parametrize(
    "override,message",
    [
        ("regularization.dropout=1.5", "regularization.dropout must be < 1, got 1.5"),
        ("data.name=kmnist", "data.name must be one of mnist, fashion_mnist, got 'kmnist'"),
        ("regularization=dropout model.dropout=0.1", "regularization.dropout=0.2 would have no effect: model mnistlab.models.LeNet5"),
        ("regularization=weight_decay optimizer.weight_decay=0", "would have no effect: optimizer torch.optim.SGD does not read it"),
        ("regularization.dropout=-0.1", "regularization.dropout must be >= 0, got -0.1"),
        ("regularization.weight_decay=-1", "regularization.weight_decay must be >= 0"),
        ("optimizer.lr=0", "optimizer.lr must be > 0, got 0"),
        ("optimizer.lr=-0.1", "optimizer.lr must be > 0"),
        ("trainer.epochs=0", "trainer.epochs must be >= 1, got 0"),
        ("trainer.batch_size=0", "trainer.batch_size must be >= 1"),
        ("trainer.limit_batches=0", "trainer.limit_batches must be >= 1"),
        (
            "callback.target_accuracy.target=101",
            "callback.target_accuracy (mnistlab.training.callbacks.TargetAccuracy): target must be between 0 and 100",
        ),
        ("trainer.device=tpu", "trainer.device must be one of auto, cpu, cuda, mps"),
        ("data.val_size=60000", "data.val_size must be < 60,000 (the training images), got 60,000"),
        ("data.val_size=1.5", "data.val_size must be an integer, got 1.5"),
        ("data.image_size=4", "data.image_size must be >= 8, got 4"),
        ("data=digits data.val_size=2000", "data.val_size must be < 1,347"),
        ("regularization.label_smoothing=1", "regularization.label_smoothing must be < 1"),
        ("regularization.augment.rotation=-5", "regularization.augment.rotation must be >= 0"),
        ("regularization.augment.scale=1.5", "regularization.augment.scale must be < 1"),
        ("regularization.augment.elastic_sigma=0", "regularization.augment.elastic_sigma must be > 0"),
        ("regularization.augment.translate=nan", "regularization.augment.translate must be >= 0, got nan"),
        ("callback.keep_best.enabled=true", "callback.keep_best reads val_acc, which needs a validation split: set data.val_size"),
        ("regularization=early_stopping", "callback.early_stopping reads val_acc, which needs a validation split: set data.val_size"),
        ("callback.early_stopping.patience=3", "callback.early_stopping reads val_acc, which needs a validation split"),
        (
            "callback.keep_best.monitor=test_acc",
            "callback.keep_best (mnistlab.training.callbacks.KeepBest): monitor must be a validation column",
        ),
        ("trainer.cuda_graph=maybe", "trainer.cuda_graph must be auto, true or false"),
        ("seed=abc", "seed must be an integer"),
        ("seed=-1", "seed must be >= 0, got -1"),
        ("regularization.augment.rotation=1e9", "regularization.augment.rotation must be <= 180, got 1000000000.0"),
        ("regularization.augment.translate=0.9", "regularization.augment.translate must be <= 0.5"),
        ("regularization.augment.elastic_alpha=100", "regularization.augment.elastic_alpha must be <= 28"),
        ("optimizer.momentum=1.5", "optimizer.momentum must be < 1, got 1.5"),
        ("optimizer.momentum=-0.1", "optimizer.momentum must be >= 0"),
        ("optimizer.lr=true", "optimizer.lr must be a number, got True"),
        ("optimizer=adam optimizer.betas=[0.9,1.5]", "optimizer.betas must be < 1, got 1.5"),
        ("optimizer=adamw +optimizer.eps=0", "optimizer.eps must be > 0, got 0"),
        ("scheduler.pct_start=1.5", "scheduler.pct_start must be < 1, got 1.5"),
        ("scheduler.div_factor=0", "scheduler.div_factor must be >= 1"),
        ("scheduler=cosine scheduler.min_factor=2", "scheduler.min_factor must be <= 1, got 2"),
        ("scheduler=cosine scheduler.warmup_epochs=20", "scheduler.warmup_epochs must be <= trainer.epochs (15), got 20"),
        ("scheduler=step scheduler.gamma=0", "scheduler.gamma must be > 0, got 0"),
        ("scheduler=step scheduler.step_epochs=0", "scheduler.step_epochs must be >= 1"),
        ("model=mlp model.hidden=[128,0]", "model.hidden must be >= 1, got 0"),
        ("trainer.batch_size=100000", "trainer.batch_size must be <= 60,000 (the training images left by data.val_size), got 100,000"),
        ("trainer.batch_size=56000 data.val_size=5000", "trainer.batch_size must be <= 55,000"),
    ],
)
def test_bad_values_fail_naming_the_key(make_cfg, override, message):
    """Each refused before the data are read: by the checks, or by the parts built before reading."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        Parts(check(make_cfg(*override.split())))


@pytest.mark.parametrize(
    "override,message",
    [
        ("+trainer.epoch=3", "trainer.epoch is not a setting: nothing reads it (did you mean trainer.epochs?)"),
        (
            "+regularization.augment.rotate=5",
            "regularization.augment.rotate is not a setting: nothing reads it (did you mean regularization.augment.rotation?)",
        ),
        ("+data.val=5000", "data.val is not a setting"),
        ("+optimizer.momentun=0.9", "optimizer.momentun is not a setting: nothing reads it (did you mean optimizer.momentum?)"),
        ("+model.dropuot=0.1", "model.dropuot is not a setting: nothing reads it (did you mean model.dropout?)"),
        ("+scheduler.warmup=2", "scheduler.warmup is not a setting"),
        ("+epochs=3", "epochs is not a setting: nothing reads it"),
        ("model._target_=mnistlab.models.ResNet", "model._target_=mnistlab.models.ResNet cannot be imported"),
    ],
)
def test_keys_nothing_reads_are_refused_with_their_name(make_cfg, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check(make_cfg(override))


def test_a_key_added_that_the_class_reads_is_accepted_and_reaches_it(make_cfg):
    config = check(make_cfg("optimizer.nesterov=false", "+optimizer.dampening=0.1", "~model.num_classes", "+model.num_classes=10"))
    model = instantiate(config.cfg.model)
    assert make_optimizer(config.cfg.optimizer, model, torch.device("cpu")).defaults["dampening"] == 0.1


def _numeric_leaves(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numeric_leaves(value, f"{prefix}.{key}" if prefix else key)
    elif (
        isinstance(node, list)
        and node
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in node)
        or isinstance(node, int | float)
        and not isinstance(node, bool)
    ):
        yield prefix


def test_every_numeric_key_of_every_option_has_a_range():
    """Nothing numeric goes unchecked: each key of the schemas and of every option file has bounds (the docs' table
    is generated from them)."""
    ranged = set()
    for group, schema in SCHEMAS.items():
        for field in dataclasses.fields(schema):
            if dataclasses.is_dataclass(field.default_factory):
                ranged |= {f"{group}.{field.name}.{f.name}" for f in dataclasses.fields(field.default_factory) if f.metadata}
            elif field.metadata:
                ranged.add(f"{group}.{field.name}")
    for path in sorted(CONF.glob("*/*.yaml")):
        if path.parent.name not in (*SCHEMAS, *ARGUMENT_RANGES):
            continue
        group = path.parent.name
        text = path.read_text()
        for leaf in _numeric_leaves(yaml.safe_load(text) or {}):
            key = leaf if text.startswith("# @package _global_") else f"{group}.{leaf}"
            owner = key.split(".")[0]
            assert key in ranged or key.rsplit(".", 1)[-1] in ARGUMENT_RANGES.get(owner, {}), f"{path.name}: {key} has no range"


def test_unavailable_device_is_explained():
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device("cuda")
    assert pick_device("cpu").type == "cpu"
