"""The whole training step (forward, backward, optimizer update) captured once in a CUDA graph and replayed.

An MNIST step is a few dozen tiny kernels; on a GPU their launches, not the arithmetic, set the speed.
A captured graph launches them all at once. Batches are copied into static input buffers, so each
epoch's permutation (and every batch technique, which runs before the copy) stays random. Batches of
another shape or type (an epoch's last, smaller batch) run eagerly on the same parameters and optimizer
state, and a step that cannot be captured (a loss that synchronizes, say) runs eagerly throughout, after
one log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from mnistlab.errors import ConfigError

log = logging.getLogger(__name__)

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Make the optimizer's update graph-safe: learning rate as a device tensor, device-side step counters.

    The scheduler keeps writing the learning rate (``fill_`` into that tensor), so a replayed graph
    always uses the current value.
    """
    for group in optimizer.param_groups:
        if "capturable" in group:  # Adam, AdamW, ...
            group["capturable"] = True
        elif isinstance(optimizer, torch.optim.SGD):
            group["fused"], group["foreach"] = True, False  # the fused kernel reads a tensor lr on the device
        else:
            raise ConfigError(
                f"trainer.cuda_graph cannot capture {type(optimizer).__name__}; use SGD, Adam or AdamW, or trainer.cuda_graph=false"
            )
        group["lr"] = torch.tensor(float(group["lr"]), device=device)
    for state in optimizer.state.values():
        if "step" in state:
            state["step"] = torch.as_tensor(state["step"], dtype=torch.float32).to(device)


def portable_state(state_dict: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state_dict that loads anywhere: plain float lr, the CUDA-only ``capturable`` flag off."""
    for group in state_dict["param_groups"]:
        group["lr"] = float(group["lr"])
        if group.get("capturable"):
            group["capturable"] = False
    return state_dict


class GraphedStep:
    """Call like ``step(x, y)``: eager warm-up on a side stream, then capture, then graph replays.

    ``step`` must run the full update (zero_grad, forward, backward, optimizer.step) and return tensors.
    """

    def __init__(self, step: Step, optimizer: torch.optim.Optimizer, warmup_steps: int = 3):
        self.step, self.optimizer, self.warmup_steps = step, optimizer, warmup_steps
        self.graph: torch.cuda.CUDAGraph | None = None
        self.signature: tuple | None = None  # the shapes and types of (x, y) the graph is captured for
        self.eager = False  # capture failed: every step runs eagerly
        self.calls = 0
        self.side_stream: torch.cuda.Stream | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.calls == 0:
            make_capturable(self.optimizer, x.device)
            self.side_stream = torch.cuda.Stream(x.device)
            self.signature = self._signature(x, y)
        self.calls += 1
        if self.eager or self._signature(x, y) != self.signature:
            return self.step(x, y)
        if self.graph is None:
            if self.calls <= self.warmup_steps:
                return self._on_side_stream(x, y)
            try:
                self._capture(x, y)
            except RuntimeError as err:
                log.warning("the training step cannot be captured in a CUDA graph (%s); it runs eagerly", str(err).splitlines()[0])
                self.eager, self.graph = True, None
                torch.cuda.synchronize(x.device)
                return self.step(x, y)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_out

    @staticmethod
    def _signature(x: torch.Tensor, y: torch.Tensor) -> tuple:
        return (x.shape, x.dtype, y.shape, y.dtype)

    def _on_side_stream(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Warm-up steps (library handles, lazy state) off the default stream, as capture requires."""
        current = torch.cuda.current_stream(x.device)
        self.side_stream.wait_stream(current)
        with torch.cuda.stream(self.side_stream):
            out = self.step(x, y)
        current.wait_stream(self.side_stream)
        return out

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.static_x, self.static_y = x.clone(), y.clone()
        self.optimizer.zero_grad(set_to_none=True)  # gradients are allocated inside the graph's pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = self.step(self.static_x, self.static_y)
