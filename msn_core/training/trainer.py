"""One training loop for every network: Adam with poly decay, seeded steps, resumable checkpoints,
a tqdm bar with the loss, and DDP through ``torchrun`` (gloo on CPU, nccl on GPU).

Each step draws its data from an RNG seeded by (seed, rank, step), so a resumed run sees exactly
the batches an uninterrupted run would have seen. A checkpoint holds only tensors and plain
Python values and is read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from msn_core.errors import InputError


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (model settings live in msn_core.config)."""

    steps: int = 1000
    batch: int = 4
    lr: float = 5e-4
    poly_power: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    ckpt_every: int = 100
    grad_clip: float = 5.0
    progress: bool = True


# ------------------------------------------------------------------------------- DDP


def setup_distributed() -> tuple[int, int]:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1): gloo on CPU, nccl on
    GPU. Returns (rank, world_size); (0, 1) for a plain run."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def step_rng(seed: int, rank: int, step: int) -> np.random.Generator:
    """The RNG of one step on one rank (also seeds torch for torchvision's augmentations)."""
    torch.manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2**63))
    return np.random.default_rng([seed, rank, step])


def poly_lr(step: int, steps: int, power: float) -> float:
    """The poly learning-rate factor (1 - step / steps) ** power."""
    return max(0.0, 1.0 - step / max(steps, 1)) ** power


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: str | Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, losses: list
) -> None:
    """Atomically write model + optimiser state and the step count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": _unwrap(model).state_dict(),
            "optim": opt.state_dict(),
            "step": step,
            "losses": list(losses),
        },
        tmp,
    )
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, model: nn.Module, opt: torch.optim.Optimizer) -> tuple[int, list]:
    """Restore a checkpoint written by ``save_checkpoint``; returns (step, losses)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise InputError(f"checkpoint {path} cannot be read ({exc}); delete it to start afresh") from exc
    _unwrap(model).load_state_dict(ckpt["model"], strict=True)
    opt.load_state_dict(ckpt["optim"])
    return int(ckpt["step"]), list(ckpt.get("losses", []))


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ---------------------------------------------------------------------------------- loop


def train_loop(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, np.random.Generator], Tensor],
    cfg: TrainConfig,
    ckpt_path: str | Path | None = None,
    desc: str = "train",
    log: Callable[[str], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    local: bool = False,
) -> dict:
    """Optimise ``model`` for ``cfg.steps`` steps of ``loss_fn(model, rng)``; resumes from
    ``ckpt_path`` if it exists. Under torchrun the model is wrapped in DDP (gradients averaged),
    unless ``local``: a run of this process alone (a per-video adaptation while mining on rank 0).
    ``on_step(step, steps, loss)`` is called after each step (rank 0) for progress in UIs.
    Returns {"steps", "losses" (per step, this rank), "seconds", "resumed_from"}."""
    from tqdm import tqdm

    if cfg.steps < 1:
        raise InputError(f"steps must be >= 1, got {cfg.steps}")
    rank, world = (0, 1) if local else setup_distributed()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, losses = 0, []
    if ckpt_path is not None and Path(ckpt_path).is_file():
        start, losses = load_checkpoint(ckpt_path, model, opt)
    wrapped: nn.Module = model
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's weights
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(start, cfg.steps), desc=desc, disable=not cfg.progress or rank != 0, dynamic_ncols=True)
    ema = None
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * poly_lr(step, cfg.steps, cfg.poly_power)
        rng = step_rng(cfg.seed, rank, step)
        loss = loss_fn(wrapped, rng)
        if not torch.isfinite(loss):
            raise RuntimeError(f"{desc}: loss is {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        value = float(loss.item())
        losses.append(value)
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        bar.set_postfix(loss=f"{ema:.4f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
        if on_step is not None and rank == 0:
            on_step(step + 1, cfg.steps, value)
        last = step + 1 == cfg.steps
        if log is not None and rank == 0 and ((step + 1) % 50 == 0 or last):
            log(f"{desc} step {step + 1}/{cfg.steps} loss(ema) {ema:.4f} {time.perf_counter() - t0:.0f}s")
        if ckpt_path is not None and rank == 0 and ((step + 1) % cfg.ckpt_every == 0 or last):
            save_checkpoint(ckpt_path, wrapped, opt, step + 1, losses)
    if world > 1:
        dist.barrier()
    model.eval()
    return {"steps": cfg.steps, "losses": losses, "seconds": time.perf_counter() - t0, "resumed_from": start}


def mean_first_last(losses: list[float], n: int = 20) -> tuple[float, float]:
    """Mean loss over the first and the last ``n`` steps (for logs and tests)."""
    if not losses:
        return math.nan, math.nan
    return float(np.mean(losses[:n])), float(np.mean(losses[-n:]))
