"""Where the engine's memory peaks on one large slice: resident memory by stage of ``denoise``.

A thread samples the process's resident set size (``VmRSS``, Linux) every 20 ms while
``denoise_steps`` runs on one synthetic ``--size`` x ``--size`` uint16 slice, and prints the highest
value seen in each stage: the noise estimate, what follows it before the first fit step (the priors'
estimates ``D_k(y)``, network set-up), the fit steps, and the final whole-image pass; then the
process's peak (``ru_maxrss``). The posterior std is skipped, as the widget and the batch command do
by default.

    python benchmarks/slice_memory.py --size 2048 --preset fast
"""

from __future__ import annotations

import argparse
import resource
import threading
import time


def _rss_mb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--preset", default="fast")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import torch

    from napari_scoredvi.engine import api
    from napari_scoredvi.io.synthetic import add_camera_noise, clean_fluorescence

    torch.set_num_threads(args.threads)
    image = add_camera_noise(clean_fluorescence((args.size, args.size), seed=0), seed=0)
    stage = {"now": "start"}
    peaks: dict[str, int] = {}

    def sample() -> None:
        while True:
            peaks[stage["now"]] = max(peaks.get(stage["now"], 0), _rss_mb())
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    estimate = api.estimate_noise

    def timed_estimate(y):
        stage["now"] = "noise estimate"
        out = estimate(y)
        stage["now"] = "priors' estimates, set-up"
        return out

    api.estimate_noise = timed_estimate
    steps = api.denoise_steps(image, preset=args.preset, device="cpu", posterior_std=False)
    try:
        while True:
            step, total = next(steps)
            stage["now"] = "fit steps" if step < total else "final pass"
    except StopIteration:
        pass
    finally:
        api.estimate_noise = estimate
    stage["now"] = "done"
    time.sleep(0.1)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}: {args.size}x{args.size} uint16, preset {args.preset}, CPU, "
          f"{args.threads} torch threads; highest RSS by stage (MB)")
    for name, mb in peaks.items():
        print(f"  {name:28s} {mb:6d}")
    print(f"  {'peak (ru_maxrss)':28s} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024:6d}")


if __name__ == "__main__":
    main()
