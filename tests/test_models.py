import pytest
import torch

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
    with pytest.raises(ValueError, match="model.activation"):
        LeNet5(activation="gelu")
    with pytest.raises(ValueError, match="model.hidden"):
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


def _textbook_lenet5(activation: str) -> torch.nn.Sequential:
    """LeNet-5 layer by layer as usually written (activation before pooling, C5 a convolution)."""
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
    nn = torch.nn
    return nn.Sequential(
        nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), act(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.MaxPool2d(2),
            nn.Conv2d(16, 120, 5), act(), nn.Flatten(),
        ),
        nn.Sequential(nn.Dropout(0.0), nn.Linear(120, 84), act(), nn.Dropout(0.0), nn.Linear(84, 10)),
    )  # fmt: skip


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("amp", [False, True])
def test_lenet5_computes_the_textbook_function_and_gradients(activation, channels_last, amp):
    """Pooling before the activation, fused with ReLU, and C5 as a matrix product change the cost, not the result."""
    if amp and activation == "tanh":
        pytest.skip("tanh rounded to bf16 makes ties of distinct inputs, so pooling after it routes gradients differently")
    torch.manual_seed(0)
    ours, textbook = LeNet5(activation=activation), _textbook_lenet5(activation)
    textbook.load_state_dict({k.replace("features", "0").replace("classifier", "1"): v for k, v in ours.state_dict().items()})
    x = torch.randn(16, 1, 28, 28)
    if channels_last:
        ours, textbook = ours.to(memory_format=torch.channels_last), textbook.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):  # bf16 maps take the fused pooling's integer path
        out, ref = ours(x), textbook(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    out.square().sum().backward()
    ref.square().sum().backward()
    for (name, p), q in zip(ours.named_parameters(), textbook.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
