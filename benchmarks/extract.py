"""Feature extraction time per image at 640x480 (or ``--size W H``) on this machine, per
extractor, with ratios against the default (GN-Net heads on the DISK trunk, ``gnnet-disk``)
run with its stride-1 head NOT folded into the last convolution (the baseline, measured in
the same run), the default without its fused inference kernels (``features/fused.py``), and
the default with its decoder's convolutions in float32, by PyTorch and by Winograd's algorithm
(``features/winograd.py``; the default's own where the CPU has no native bfloat16).

    .venv/bin/python benchmarks/extract.py [--size 640 480] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from s2dloc.features.registry import load_extractor_or_baseline
from s2dloc.utils.table import format_table


def time_ms(extractor, image: torch.Tensor, repeats: int) -> tuple[float, float, float]:
    """Median, min and max milliseconds of ``extractor(image)`` after one warm-up call."""
    with torch.inference_mode():
        extractor(image)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            extractor(image)
            times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    W, H = args.size
    image = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0))
    unfolded = load_extractor_or_baseline("gnnet-disk").eval()
    unfolded.fold_head = False
    unfused = load_extractor_or_baseline("gnnet-disk").eval()
    unfused.fuse_inference = False
    direct = load_extractor_or_baseline("gnnet-disk").eval()
    direct.bf16_decoder = direct.winograd_decoder = False
    winograd = load_extractor_or_baseline("gnnet-disk").eval()
    winograd.bf16_decoder = False
    rows = [
        ("gnnet-disk (default), head not folded (baseline)", unfolded),
        ("gnnet-disk, fused kernels off", unfused),
        ("gnnet-disk, decoder: PyTorch's float32 convolutions", direct),
        ("gnnet-disk, decoder: Winograd float32 convolutions", winograd),
    ]
    names = ("gnnet-disk", "gnnet-distilled", "disk-trunk", "gnnet")
    rows += [(n, load_extractor_or_baseline(n).eval()) for n in names]
    base = None
    table = []
    for name, extractor in rows:
        med, lo, hi = time_ms(extractor, image, args.repeats)
        base = base or med
        table.append([name, f"{med:.0f} [{lo:.0f}, {hi:.0f}]", f"{med / base:.2f}x"])
    print(f"{W}x{H}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(format_table(table, ["extractor", "ms per image [min, max]", "x baseline"]))


if __name__ == "__main__":
    main()
