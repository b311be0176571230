"""Training throughput (pairs/s, steps/s) and peak memory of GN-Net training, batch 4.

Without ``--conf``: GN-Net on one small synthetic world at 320x240. With ``--conf`` (e.g.
``configs/gnnet_disk.yaml``): that recipe as configured (its data, model and image size). The
baseline, measured in the same run, is the network alone (forward and backward of both images
with a trivial loss), so the ratio shows what the GN and contrastive losses and the
hard-negative mining add.

    python benchmarks/train.py [--steps 5] [--conf configs/gnnet_disk.yaml]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import torch

from s2dloc.training.config import load_config
from s2dloc.training.data import batch_for_step
from s2dloc.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--conf", help="training config to measure (default: synthetic GN-Net)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        common = [f"out_dir={out}", f"data.batch_size={args.batch}", "train.val_every=0"]
        if args.conf:
            conf = load_config(args.conf, common)
        else:
            conf = load_config(
                None,
                [
                    *common,
                    "data.image_size=[320, 240]",
                    "data.worlds=[[street, 1]]",
                    "data.world_views=8",
                ],
            )
        trainer = Trainer(conf)
        trainer.train_step()  # warm-up
        tic = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        full = args.steps * args.batch / (time.perf_counter() - tic)
        model, opt = trainer.model, trainer.optimizer
        batch = batch_for_step(trainer.dataset, 0, args.batch, 0)
        batch = {k: v.to(trainer.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        tic = time.perf_counter()
        for _ in range(args.steps):
            loss = sum(f.square().mean() for im in ("image_a", "image_b") for f in model(batch[im]))
            opt.zero_grad()
            loss.backward()
        net = args.steps * args.batch / (time.perf_counter() - tic)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    w, h = conf["data"]["image_size"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {trainer.device}, "
        f"{w}x{h}, batch {args.batch}, model {conf['model']['name']}, "
        f"frozen trunk {conf['model']['freeze_trunk']}, data {conf['data']['source']}"
    )
    print(
        f"training (data + GN + contrastive + mining): {full:.2f} pairs/s, "
        f"{full / args.batch:.3f} steps/s"
    )
    print(
        f"network only (forward + backward):   {net:.2f} pairs/s  (losses cost {net / full:.2f}x)"
    )
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
