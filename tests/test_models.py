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
    assert "conv1  (5*5*1+1)*6 = 156" in table
    assert "conv5  (5*5*16+1)*120 = 48,120" in table
    assert "out    (84+1)*10 = 850" in table
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
    """C1, activation, S2, C3, activation, S4, C5, activation, F6, activation, output: PyTorch's own layers, nothing else."""
    nn = torch.nn
    model = LeNet5()
    assert [type(m) for m in model.features] == [
        nn.Conv2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.Conv2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.Conv2d,
        nn.ReLU,
        nn.Flatten,
    ]
    assert [type(m) for m in model.classifier] == [nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    paper = LeNet5(activation="tanh", pooling="avg")
    assert [type(m) for m in paper.features][:3] == [nn.Conv2d, nn.Tanh, nn.AvgPool2d]


def test_state_dict_keys_are_stable():
    """Checkpoints written by earlier versions load: the weight layers keep their positions."""
    assert list(LeNet5().state_dict()) == [
        f"{part}.{i}.{p}"
        for part, i in [("features", 0), ("features", 3), ("features", 6), ("classifier", 1), ("classifier", 4)]
        for p in ("weight", "bias")
    ]
    assert "features.1.running_mean" in LeNet5(batch_norm=True).state_dict()
