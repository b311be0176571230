"""GN-Net training: Gauss-Newton + contrastive losses per level, exact resume, optional DDP.

A step is a pure function of ``(seed, step)`` (data, loss randomness, mining) given the model
and optimizer state, so resuming from a checkpoint or running under ``torchrun`` reproduces
the same run.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from s2dloc.features.registry import MODELS, check_state_dict, load_extractor, save_checkpoint
from s2dloc.geometry import sample
from s2dloc.training.checkpoint import (
    check_resume_config,
    load_resume_state,
    read_resume_checkpoint,
)
from s2dloc.training.data import batch_for_step, build_dataset
from s2dloc.training.distill import (
    DistillValidator,
    Teacher,
    build_crops,
    crop_images,
    distillation_loss,
)
from s2dloc.training.logs import TrainLog
from s2dloc.training.losses import contrastive_loss, gauss_newton_loss
from s2dloc.training.mining import mine_negatives
from s2dloc.training.validation import Validator
from s2dloc.utils.device import resolve_device

logger = logging.getLogger(__name__)

HEADS = ("heads.", "confidence_heads.")


def build_model(model_conf: dict, seed: int) -> torch.nn.Module:
    """The model of ``model`` (its initialisation drawn from ``seed``, or the weights of the
    checkpoint ``init``); with ``freeze_trunk`` only the heads (``heads``,
    ``confidence_heads``) keep ``requires_grad``."""
    conf = {k: v for k, v in model_conf.items() if k not in ("name", "freeze_trunk", "init")}
    name = model_conf.get("name", "gnnet")
    if name not in MODELS:
        raise ValueError(f"model.name must be one of {sorted(MODELS)}, got {name!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS[name](conf)
    if model_conf.get("init"):
        init = load_extractor(model_conf["init"])
        check_state_dict(model, init.state_dict(), f"model.init {model_conf['init']}")
        model.load_state_dict(init.state_dict())
        logger.info("model initialised from %s", model_conf["init"])
    if model_conf.get("freeze_trunk"):
        for key, p in model.named_parameters():
            p.requires_grad_(key.startswith(HEADS))
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info(
            "trunk frozen: training %d of %d parameters (the heads)",
            n,
            sum(p.numel() for p in model.parameters()),
        )
    return model


def level_losses(feats_a, feats_b, batch, strides, conf: dict, step: int, g: torch.Generator):
    """Sum over levels of the GN and contrastive losses, and per-term scalars for logging."""
    lc = conf["loss"]
    valid = batch["valid"]
    total, logs = 0.0, {"e1": 0.0, "e2": 0.0, "contrastive": 0.0, "feature_norm": 0.0}
    for li, (Fa, Fb, s) in enumerate(zip(feats_a, feats_b, strides)):
        u_a, u_b = batch["points_a"] / s, batch["points_b"] / s
        gn = gauss_newton_loss(
            Fa,
            Fb,
            u_a,
            u_b,
            valid,
            vicinity=lc["vicinity"][li],
            w1=lc["e1_weight"],
            w2=lc["e2_weight"],
            both_directions=lc["both_directions"],
            generator=g,
        )
        f_a = sample(Fa, u_a)[0]
        u_neg, v_neg = mine_negatives(
            f_a.detach(),
            Fb.detach(),
            u_b,
            lc["negatives"],
            step=step,
            mode=lc["mining"],
            exclude_radius=lc["exclusion_radius"],
            num_candidates=lc["negative_pool"],
            generator=g,
        )
        con = contrastive_loss(
            Fa, Fb, u_a, u_b, u_neg, valid, v_neg, margin=(lc["margin_pos"], lc["margin_neg"])
        )
        total = total + lc["gn_weight"] * gn["total"] + lc["contrastive_weight"] * con["total"]
        logs["e1"] += float(gn["e1"].detach()) / len(strides)
        logs["e2"] += float(gn["e2"].detach()) / len(strides)
        logs["contrastive"] += float(con["total"].detach()) / len(strides)
        logs["feature_norm"] += float(gn["feature_norm"]) / len(strides)
    logs["total"] = float(total.detach())
    return total, logs


class Trainer:
    """Trains a dense extractor from a configuration (see ``training/config.py``)."""

    def __init__(self, conf: dict, rank: int = 0, world_size: int = 1, force: bool = False):
        self.conf, self.rank, self.world_size, self.force = conf, rank, world_size, force
        self.out = Path(conf["out_dir"])
        self.ckpt_path = self.out / "last.pt"
        device = conf.get("device", "auto")
        # DDP with nccl needs one GPU per process: each rank names its own, and a missing one is
        # an error (not shared, as resolve_device's "auto" shares them for localization).
        if device in ("auto", "cuda") and world_size > 1 and torch.cuda.is_available():
            device = f"cuda:{os.environ.get('LOCAL_RANK', rank)}"
        self.device = resolve_device(device)
        self.model = build_model(conf["model"], conf["seed"]).to(self.device)
        self.strides = self.model.strides
        oc = conf["optim"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=oc["lr"], weight_decay=oc["weight_decay"])
        steps = conf["train"]["steps"]
        if oc["scheduler"] == "cosine":
            fn = lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps))  # noqa: E731
        else:
            fn = lambda k: 1.0  # noqa: E731
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, fn)
        self._lr_factor = fn
        self.step = 0
        if self.ckpt_path.exists():
            self._resume()
        self.net = self.model
        if world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
        self.teacher: Teacher | None = None
        if conf["train"]["objective"] == "distill":
            self.teacher = Teacher(conf["distill"]["teacher"], self.device)
            self.teacher.check_student(self.model)
            self._images = crop_images(conf["distill"])
            self.dataset = build_crops(conf["distill"], conf["seed"], self._images)
        else:
            self.dataset = build_dataset(conf["data"], conf["seed"])

    def _resume(self) -> None:
        ckpt = read_resume_checkpoint(self.ckpt_path, self.device)
        check_resume_config(self.ckpt_path, ckpt["train_config"], self.conf, self.force)
        load_resume_state(
            self.ckpt_path,
            ckpt,
            {"state_dict": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler},
        )
        self.step = int(ckpt["step"])
        # The schedule is a function of the step: recompute the rate (train.steps may have changed).
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * self._lr_factor(self.step)
        logger.info("resumed from %s at step %d", self.ckpt_path, self.step)

    def save(self, path: Path | None = None) -> Path:
        extra = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "train_config": self.conf,
        }
        return save_checkpoint(self.model, path or self.ckpt_path, extra)

    def train_step(self) -> dict[str, float]:
        conf, k = self.conf, self.step
        batch = batch_for_step(
            self.dataset, k, conf["data"]["batch_size"], conf["seed"], self.rank, self.world_size
        )
        self.net.train()
        if self.teacher is not None:
            targets = self.teacher.targets(batch)
            loss, logs = distillation_loss(self.net(batch["image"].to(self.device)), targets)
        else:
            batch = {n: v.to(self.device) if torch.is_tensor(v) else v for n, v in batch.items()}
            g = torch.Generator().manual_seed(conf["seed"] * 7_919 + k * 131 + self.rank)
            feats_a = self.net(batch["image_a"])
            feats_b = self.net(batch["image_b"])
            loss, logs = level_losses(feats_a, feats_b, batch, self.strides, conf, k, g)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = conf["optim"].get("grad_clip")
        if clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        logs["lr"] = self.scheduler.get_last_lr()[0]
        return logs

    def _validator(self):
        """Held-out validation: F-PnP on synthetic conditions, or the distillation loss."""
        if self.teacher is None:
            return Validator(self.conf)
        return DistillValidator(self.conf["distill"], self.conf["seed"], self.teacher, self._images)

    def check_replicas(self) -> None:
        """Raise if the model parameters differ between processes (DDP must keep them equal)."""
        flat = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).double()
        index = torch.arange(flat.numel(), device=flat.device, dtype=flat.dtype)
        probe = torch.stack([flat.sum(), (flat * index).sum()])
        gathered = [torch.zeros_like(probe) for _ in range(self.world_size)]
        dist.all_gather(gathered, probe)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise RuntimeError(f"model replicas diverged across processes: {gathered}")
        logger.info("model replicas identical on %d processes", self.world_size)

    def run(self) -> Path:
        tc = self.conf["train"]
        main = self.rank == 0
        log = TrainLog(self.out, self.step) if main else None
        validator = self._validator() if main and tc["val_every"] > 0 else None
        bar = tqdm(total=tc["steps"], initial=self.step, desc="train", disable=not main)
        tic = time.perf_counter()
        while self.step < tc["steps"]:
            logs = self.train_step()
            bar.update()
            if main and (self.step % tc["log_every"] == 0 or self.step == tc["steps"]):
                logs["pairs_per_s"] = (
                    self.conf["data"]["batch_size"]
                    * self.world_size
                    * tc["log_every"]
                    / (time.perf_counter() - tic)
                )
                tic = time.perf_counter()
                if validator is not None and (
                    self.step % tc["val_every"] == 0 or self.step == tc["steps"]
                ):
                    logs.update({f"val/{k}": v for k, v in validator(self.model).items()})
                log.log(self.step, logs)
                bar.set_postfix(total=f"{logs['total']:.3f}")
            if main and (self.step % tc["ckpt_every"] == 0 or self.step == tc["steps"]):
                self.save()
                log.plot()
            if self.world_size > 1:
                dist.barrier()
        bar.close()
        if self.world_size > 1:
            self.check_replicas()
        if main:
            log.close()
            self.export(self.out / "model.pt")
            logger.info(
                "training done: %s (weights only: %s)", self.ckpt_path, self.out / "model.pt"
            )
        return self.ckpt_path

    def export(self, path: Path) -> Path:
        """The model alone (no optimizer state): what ships as ``s2dloc/assets/gnnet.pt``."""
        return save_checkpoint(self.model, path, {"step": self.step, "train_config": self.conf})
