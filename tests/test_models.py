import pytest
import torch

from mnistlab.errors import ConfigError
from mnistlab.models import MLP, LeNet5, count_parameters, parameter_table


def test_parameter_counts_and_the_per_layer_table():
    """LeNet-5's 61,706 parameters (the paper's) and the MLP's 109,386, layer by layer with their formulas."""
    lenet, mlp = LeNet5(), MLP()
    assert count_parameters(lenet) == 61_706 and count_parameters(mlp) == 109_386
    assert lenet(torch.randn(2, 1, 28, 28)).shape == (2, 10) and mlp(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    table = parameter_table(lenet)
    assert "c1   (5*5*1+1)*6 = 156" in table
    assert "c5   (400+1)*120 = 48,120" in table
    assert "out  (84+1)*10 = 850" in table
    assert table.splitlines()[-1].split() == ["total", "61,706"]
    assert "fc1  (784+1)*128 = 100,480" in parameter_table(mlp)


def test_bad_choices_name_the_key():
    with pytest.raises(ConfigError, match="model.activation must be one of relu, tanh, got 'gelu'"):
        LeNet5(activation="gelu")
    with pytest.raises(ConfigError, match="model.pooling"):
        LeNet5(pooling="min")
    with pytest.raises(ConfigError, match="model.hidden"):
        MLP(hidden=[])


def test_dropout_and_batch_norm_are_where_the_settings_put_them():
    """LeNet-5: dropout before F6 and the output, batch norm after C1, C3, C5 and F6; the MLP: after each hidden layer."""
    nn = torch.nn
    lenet, mlp = LeNet5(dropout=0.3, batch_norm=True), MLP(dropout=0.3, batch_norm=True)
    assert [m.p for m in lenet.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    assert [m.num_features for m in lenet.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)] == [6, 16, 120, 84]
    assert [m.num_features for m in mlp.modules() if isinstance(m, nn.BatchNorm1d)] == [128, 64]
    assert [m.p for m in mlp.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    plain = LeNet5()
    assert not any(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in plain.modules())
    assert all(m.p == 0 for m in plain.modules() if isinstance(m, nn.Dropout))


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
