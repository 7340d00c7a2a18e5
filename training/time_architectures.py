"""Seconds per training step (batch 32 of 64 x 64) and per 512 x 512 inference of candidate prior
architectures, one thread: quality per second is judged with these (docs/priors.md).

    python training/time_architectures.py
"""

from __future__ import annotations

import time

import torch

from napari_scoredvi.engine.priors.models import BiasFreeUNet

CANDIDATES = ((32, 3, 2), (32, 4, 2), (48, 4, 2), (64, 4, 2), (32, 4, 3))  # width, levels, convs


def main() -> None:
    torch.set_num_threads(1)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, 1 thread")
    for width, levels, convs in CANDIDATES:
        net = BiasFreeUNet(1, width, levels, convs)
        params = sum(p.numel() for p in net.parameters())
        opt = torch.optim.Adam(net.parameters())
        x = torch.rand(32, 1, 64, 64)
        for _ in range(3):  # the last of 3 steps
            t0 = time.perf_counter()
            loss = ((net(x) - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            train = time.perf_counter() - t0
        net = net.eval().to(memory_format=torch.channels_last)
        with torch.no_grad():
            y = torch.rand(1, 1, 512, 512).contiguous(memory_format=torch.channels_last)
            net(y)
            t0 = time.perf_counter()
            net(y)
            infer = time.perf_counter() - t0
        print(f"width {width}, levels {levels}, convs {convs}: {params / 1e6:.2f} M parameters, "
              f"train {train:.2f} s/step, 512 x 512 inference {infer:.3f} s", flush=True)


if __name__ == "__main__":
    main()
