"""Device and speed policy: which device, how many CPU threads, and which speed options pay off where.

Every speed option is accepted everywhere; where it does not apply it is noted in the log and dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import torch
from torch import nn

from mnistlab.config.schema import TrainerSettings
from mnistlab.errors import ConfigError

log = logging.getLogger("mnistlab")
TORCH_THREADS = torch.get_num_threads()  # torch's default, before anything sets it: the physical cores


def pick_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but CUDA is not available here; use trainer.device=auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"trainer.device={name} but MPS is not available here; use trainer.device=auto or cpu")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32.

    oneDNN's own check says yes on any AVX-512 CPU, where a bf16 LeNet-5 step was 0.7x as fast as fp32.
    """
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def speed_settings(trainer: TrainerSettings, device: torch.device) -> TrainerSettings:
    """``trainer`` with the speed options that pay off on ``device`` kept and the others dropped (and noted).

    ``cuda_graph: auto`` means on for CUDA, unless the model is compiled: torch.compile and our own
    capture are combined only when asked for.
    """
    amp = trainer.amp and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()))
    if trainer.amp and not amp:
        log.info("trainer.amp (bf16 autocast) needs CUDA or a CPU with native bf16; ignored on %s", device)
    if amp and device.type == "cpu" and not trainer.channels_last:
        log.info(
            "trainer.amp without trainer.channels_last made LeNet-5's CPU training step slower than fp32; add trainer.channels_last=true"
        )
    wanted = (not trainer.compile) if trainer.cuda_graph == "auto" else bool(trainer.cuda_graph)
    cuda_graph = device.type == "cuda" and wanted
    if trainer.cuda_graph is True and not cuda_graph:
        log.info("trainer.cuda_graph applies on CUDA only; ignored on %s", device)
    if trainer.compile and device.type != "cuda":
        log.info("trainer.compile applies on CUDA only; ignored on %s", device)
    return dataclasses.replace(trainer, amp=amp, cuda_graph=cuda_graph, compile=trainer.compile and device.type == "cuda")


def prepare_model(model: nn.Module, trainer: TrainerSettings, device: torch.device) -> nn.Module:
    """Move the model to ``device`` in the configured memory format; compile it in place where asked (CUDA)."""
    model = model.to(device)
    if trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if trainer.compile:
        model.compile()  # in place: state_dict keys (and so checkpoints) stay the same
    return model


def fused_optimizer(device: torch.device) -> bool:
    """PyTorch's single-kernel optimizer update exists on CPU and CUDA (2-4x faster than the per-tensor one)."""
    return device.type in ("cpu", "cuda")


def cpu_share(parallel_jobs: int | None = None, cpus_per_task: int | None = None) -> int:
    """The cores this run may use: torch's default (the physical cores), the CPUs the process may run on, SLURM's
    allocation and the launcher's ``cpus_per_task``, divided among the jobs a launcher runs side by side here."""
    cores = min(TORCH_THREADS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else TORCH_THREADS)
    for limit in (os.environ.get("SLURM_CPUS_PER_TASK", ""), cpus_per_task):
        if str(limit or "").isdigit() and int(limit) > 0:
            cores = min(cores, int(limit))
    if parallel_jobs and parallel_jobs != 1:
        cores = max(1, cores // parallel_jobs) if parallel_jobs > 0 else 1  # joblib's n_jobs=-1: a job per core
    return cores


def set_threads(threads: int | None, parallel_jobs: int | None = None, cpus_per_task: int | None = None) -> int:
    """Torch's CPU threads: ``trainer.threads`` if set, else this run's share of the cores (:func:`cpu_share`)."""
    torch.set_num_threads(threads or cpu_share(parallel_jobs, cpus_per_task))
    return torch.get_num_threads()
