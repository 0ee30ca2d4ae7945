"""Devices and several processes (`accelerate launch`): one process writes the run store, everyone keeps in step.

Under `accelerate launch` every process runs every stage; only the main one (global rank 0) writes, and the
others wait for it at barriers. Nothing here is needed on one CPU or one GPU, where every helper is trivial.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch

from s2dlab.core.config import Config, ConfigError


def device_of(cfg: Config) -> str:
    """"cuda" or "cpu" for `models.device` (auto: cuda when visible); this process's GPU under a launcher."""
    if cfg.models.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("models.device=cuda but no CUDA device is visible; use models.device=cpu or auto")
    device = cfg.models.device if cfg.models.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        # Under `accelerate launch` each process owns one GPU: "cuda" then means this process's GPU, so models
        # loaded outside the trainers (probe counterpart, teacher) land next to the policy, not all on GPU 0.
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    return device


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """The process that writes the run store: global rank 0 under `accelerate launch` / torchrun, else the only one."""
    return int(os.environ.get("RANK", "0")) == 0


def process_state(cfg: Config):
    """accelerate's `PartialState` for this launch (one process unless started by `accelerate launch`).

    Made before any trainer, with the CPU flag of the config (a CPU launch otherwise counts as one process) and a
    long timeout: the other processes wait at a barrier while the main one evaluates a finished stage.
    """
    from accelerate import PartialState

    cpu = device_of(cfg) == "cpu"
    if cpu and world_size() > 1:
        # accelerate calls each CPU process's device "cpu:0", which torch.load cannot map a resumed trainer's
        # optimizer state to; plain "cpu" works everywhere.
        os.environ.setdefault("ACCELERATE_TORCH_DEVICE", "cpu")
    return PartialState(cpu=cpu, timeout=timedelta(hours=3))


def params_sharded(model) -> bool:
    """True when the model's parameters are split across processes (DeepSpeed ZeRO-3 or FSDP)."""
    p = next(model.parameters(), None)
    return p is not None and (hasattr(p, "ds_id") or type(p).__name__ in ("DTensor", "FlatParameter")
                              or type(model).__name__ == "FullyShardedDataParallel")


def gathered_state_dict(trainer) -> dict | None:
    """The full weights of a trainer's model when they are sharded across processes (ZeRO-3 / FSDP), else None.

    A collective there: call it on every process. Under DeepSpeed ZeRO-3 it needs `zero3_save_16bit_model`
    (set in configs/accelerate/zero3.yaml) and is complete on the main process only.
    """
    if not params_sharded(trainer.model):
        return None
    return trainer.accelerator.get_state_dict(trainer.model_wrapped)


def split_evenly(total: int, what: str) -> int:
    """Each process's share of `total` sequences per step; an uneven split is a config error naming the fix."""
    n = world_size()
    if total % n:
        raise ConfigError(f"{what}: {total} sequences per step do not split evenly over {n} processes; change the "
                          f"stage's batch (or prompts_per_step) or the process count")
    return total // n
