import pytest
import torch

from mnistlab.errors import ConfigError
from mnistlab.models import MLP, LeNet5, count_parameters, parameter_table


def test_lenet5_has_the_papers_parameter_count():
    model = LeNet5()
    assert count_parameters(model) == 61_706
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_mlp_default_parameter_count():
    assert count_parameters(MLP()) == 109_386
    assert MLP()(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_parameter_table_shows_formulas_and_total():
    table = parameter_table(LeNet5())
    assert "c1   (5*5*1+1)*6 = 156" in table
    assert "c5   (400+1)*120 = 48,120" in table
    assert "out  (84+1)*10 = 850" in table
    assert table.splitlines()[-1].split() == ["total", "61,706"]
    assert "fc1  (784+1)*128 = 100,480" in parameter_table(MLP())


@pytest.mark.parametrize("activation,pooling", [("tanh", "avg"), ("relu", "avg"), ("tanh", "max")])
def test_lenet5_variants(activation, pooling):
    model = LeNet5(activation=activation, pooling=pooling)
    assert count_parameters(model) == 61_706
    assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_bad_choices_name_the_key():
    with pytest.raises(ConfigError, match="model.activation must be one of relu, tanh, got 'gelu'"):
        LeNet5(activation="gelu")
    with pytest.raises(ConfigError, match="model.pooling"):
        LeNet5(pooling="min")
    with pytest.raises(ConfigError, match="model.hidden"):
        MLP(hidden=[])


@pytest.mark.parametrize("model", [LeNet5(dropout=0.5, batch_norm=True), MLP(dropout=0.5, batch_norm=True)])
def test_dropout_and_batch_norm_switch_off_in_eval(model):
    x = torch.randn(16, 1, 28, 28)
    model.train()
    assert not torch.equal(model(x), model(x))  # dropout masks differ
    model.eval()
    single = model(x[:1])
    assert torch.equal(model(x), model(x))
    assert torch.allclose(model(x)[:1], single, atol=1e-5)  # no batch statistics in eval


def test_lenet5_reads_as_the_paper_layer_by_layer():
    """C1, S2, C3, S4, C5, F6, output with their activations: PyTorch's own layers, nothing else."""
    nn = torch.nn
    model = LeNet5()
    assert [type(m) for m in model.features] == [
        nn.Conv2d,  # C1
        nn.MaxPool2d,  # S2, pooled before the activation (exact for max pooling)
        nn.ReLU,
        nn.Conv2d,  # C3
        nn.MaxPool2d,  # S4
        nn.Sequential,  # its activation, and S4's maps flattened for C5
        nn.Linear,  # C5: the 5x5 convolution over S4's 5x5 maps, as the matrix product it is
        nn.ReLU,
    ]
    assert [type(m) for m in model.features[5]] == [nn.ReLU, nn.Flatten]
    assert [type(m) for m in model.classifier] == [nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    paper = LeNet5(activation="tanh", pooling="avg")
    assert [type(m) for m in paper.features][:3] == [nn.Conv2d, nn.Tanh, nn.AvgPool2d]  # average pooling keeps the paper's order


def textbook_lenet5(activation: type, pooling: type, batch_norm: bool) -> torch.nn.Module:
    """LeNet-5 as mnistlab wrote it before: each activation before its pool, C5 a convolution, then Flatten."""
    nn = torch.nn

    def layer(weights, norm, width):
        return [weights, norm(width), activation()] if batch_norm else [weights, activation()]

    model = nn.Module()
    model.features = nn.Sequential(
        *layer(nn.Conv2d(1, 6, 5, padding=2, bias=not batch_norm), nn.BatchNorm2d, 6),
        pooling(2),
        *layer(nn.Conv2d(6, 16, 5, bias=not batch_norm), nn.BatchNorm2d, 16),
        pooling(2),
        *layer(nn.Conv2d(16, 120, 5, bias=not batch_norm), nn.BatchNorm2d, 120),
        nn.Flatten(),
    )
    model.classifier = nn.Sequential(
        nn.Dropout(0), *layer(nn.Linear(120, 84, bias=not batch_norm), nn.BatchNorm1d, 84), nn.Dropout(0), nn.Linear(84, 10)
    )
    model.forward = lambda x: model.classifier(model.features(x))
    return model


@pytest.mark.parametrize(
    "activation, pooling, batch_norm", [("relu", "max", False), ("tanh", "max", False), ("relu", "avg", False), ("relu", "max", True)]
)
def test_an_earlier_checkpoint_loads_and_computes_the_same_function(activation, pooling, batch_norm):
    """The textbook order's state_dict (C5 a 120@16x5x5 convolution) loads unchanged in its keys and gives the same logits."""
    torch.manual_seed(0)
    old = textbook_lenet5(
        {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation],
        {"max": torch.nn.MaxPool2d, "avg": torch.nn.AvgPool2d}[pooling],
        batch_norm,
    )
    old.train()
    old(torch.randn(32, 1, 28, 28))  # batch-norm running statistics that are not the defaults
    new = LeNet5(activation=activation, pooling=pooling, batch_norm=batch_norm)
    assert list(new.state_dict()) == list(old.state_dict())
    new.load_state_dict(old.state_dict())
    old.eval(), new.eval()
    x = torch.randn(16, 1, 28, 28)
    torch.testing.assert_close(new(x), old(x), rtol=1e-5, atol=1e-5)


def test_state_dict_keys_are_stable():
    """Checkpoints written by earlier versions load: the weight layers keep their positions."""
    assert list(LeNet5().state_dict()) == [
        f"{part}.{i}.{p}"
        for part, i in [("features", 0), ("features", 3), ("features", 6), ("classifier", 1), ("classifier", 4)]
        for p in ("weight", "bias")
    ]
    assert "features.1.running_mean" in LeNet5(batch_norm=True).state_dict()


def test_the_models_take_the_datasets_channels_classes_and_size():
    lenet = LeNet5(in_channels=3, num_classes=3, image_size=48)
    assert lenet(torch.randn(2, 3, 48, 48)).shape == (2, 3)
    assert "c5   (1600+1)*120 = 192,120" in parameter_table(lenet)  # C5 spans S4's 16@10x10 at 48x48
    assert MLP(in_channels=3, image_size=32, num_classes=5)(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(ConfigError, match="LeNet-5 needs images of at least 12x12, got data.image_size=8"):
        LeNet5(image_size=8)
