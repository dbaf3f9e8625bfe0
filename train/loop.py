"""The one training loop every recipe uses.

It runs unchanged on one process or under ``torchrun --nproc_per_node=N``: when
``WORLD_SIZE`` > 1 it joins the process group (gloo on CPU, NCCL on GPUs), wraps the
model in DistributedDataParallel and shards batches with a DistributedSampler.
Only rank 0 shows progress and writes the run folder.

A recipe supplies the model and ``loss_fn(model, batch) -> scalar``; the loop owns
AdamW, warmup + cosine learning rate, gradient clipping, EMA weights and saving.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from tqdm import tqdm


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 128  # global batch, split across processes
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    threads: int = 0  # torch intra-op threads per process; 0 = leave torch's default


def check_train_config(cfg: TrainConfig) -> None:
    from edgegen.errors import EdgegenError
    for name in ("steps", "batch_size"):
        if getattr(cfg, name) < 1:
            raise EdgegenError(f"train.{name} must be >= 1, got {getattr(cfg, name)}")
    if not cfg.lr > 0:
        raise EdgegenError(f"train.lr must be > 0, got {cfg.lr}")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise EdgegenError(f"train.ema_decay must be in [0, 1), got {cfg.ema_decay}")
    if cfg.warmup < 0 or cfg.threads < 0:
        raise EdgegenError("train.warmup and train.threads must be >= 0")


@dataclass
class DistInfo:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the torchrun process group if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    use_cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return DistInfo(rank, dist.get_world_size(), device)


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def fit(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, list[torch.Tensor]], torch.Tensor],
        tensors: list[torch.Tensor], cfg: TrainConfig, desc: str = "train",
        progress: bool = True) -> tuple[torch.nn.Module, dict]:
    """Train ``model`` on ``tensors`` (same first dim); return (EMA model on CPU, stats).

    Every process returns the same EMA weights (DDP keeps replicas in sync).
    """
    check_train_config(cfg)
    info = init_distributed()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + info.rank)  # per-rank noise; parameters are broadcast by DDP
    model = model.to(info.device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    net = model
    if info.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None)

    per_rank = max(1, cfg.batch_size // info.world)
    dataset = TensorDataset(*tensors)
    sampler = DistributedSampler(dataset, num_replicas=info.world, rank=info.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        from edgegen.errors import EdgegenError
        raise EdgegenError(f"data set of {len(dataset)} items is smaller than one batch of {per_rank}")

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    bar = tqdm(total=cfg.steps, desc=desc, disable=not (progress and info.main), dynamic_ncols=True)
    step, epoch, loss_avg, t0 = 0, 0, None, time.time()
    while step < cfg.steps:
        sampler.set_epoch(epoch)
        for batch in loader:
            if step >= cfg.steps:
                break
            batch = [b.to(info.device) for b in batch]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            loss = loss_fn(net, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            ema_update(ema, model, cfg.ema_decay)
            value = loss.item()
            loss_avg = value if loss_avg is None else 0.98 * loss_avg + 0.02 * value
            step += 1
            bar.update(1)
            if step % 10 == 0 or step == cfg.steps:
                bar.set_postfix(loss=f"{loss_avg:.4f}")
        epoch += 1
    bar.close()
    stats = {"steps": step, "final_loss_ema": loss_avg, "seconds": time.time() - t0,
             "world_size": info.world, "device": str(info.device)}
    return ema.cpu(), stats


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
