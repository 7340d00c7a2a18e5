"""Where the engine's memory peaks on one large slice: resident memory by stage of ``denoise``.

A thread samples the process's resident set size (``VmRSS``, Linux) every 20 ms while the engine's
stages run on one synthetic ``--size`` x ``--size`` uint16 slice, and prints the highest value seen
in each stage: the noise estimate (``estimate_noise`` called here on the normalised image, as
``denoise_steps`` calls it), what follows it before the first fit step (``denoise_steps`` given that
noise model: the priors' estimates ``D_k(y)``, network set-up), the fit steps, and the final
whole-image pass; then the process's peak (``ru_maxrss``). The posterior std is skipped, as the
widget and the batch command do by default.

    python benchmarks/slice_memory.py --size 2048 --preset fast
"""

from __future__ import annotations

import argparse
import threading
import time

import measure


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--preset", default="fast")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import torch

    from napari_scoredvi.engine.api import denoise_steps, finish
    from napari_scoredvi.engine.host_memory import tune_allocator
    from napari_scoredvi.engine.noise_estimate import estimate_noise
    from napari_scoredvi.engine.normalise import fit_normalisation
    from napari_scoredvi.engine.settings import DenoiseSettings
    from napari_scoredvi.engine.validate import as_channels_first
    from napari_scoredvi.io.synthetic import add_camera_noise, clean_fluorescence

    torch.set_num_threads(args.threads)
    image = add_camera_noise(clean_fluorescence((args.size, args.size), seed=0), seed=0)
    stage = {"now": "start"}
    peaks: dict[str, int] = {}

    def sample() -> None:
        while True:
            peaks[stage["now"]] = max(peaks.get(stage["now"], 0), measure.rss_mb())
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    tune_allocator()  # what denoise_steps does first: every stage runs with the allocator it sets
    arr = as_channels_first(image, None)
    y = fit_normalisation(arr).to_model(arr)  # model units, as denoise_steps normalises the image
    stage["now"] = "noise estimate"
    noise = estimate_noise(y)
    del arr, y  # denoise_steps makes its own copies
    stage["now"] = "priors' estimates, set-up"
    steps = denoise_steps(image, DenoiseSettings(args.preset, "cpu"), posterior_std=False, noise_model=noise)
    finish(steps, lambda event: stage.update(now="fit steps" if event.step < event.total else "final pass"))
    stage["now"] = "done"
    time.sleep(0.1)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}: {args.size}x{args.size} uint16, preset {args.preset}, CPU, "
          f"{args.threads} torch threads; highest RSS by stage (MB)")
    for name, mb in peaks.items():
        print(f"  {name:28s} {mb:6d}")
    print(f"  {'peak (ru_maxrss)':28s} {int(measure.peak_rss_mb()):6d}")


if __name__ == "__main__":
    main()
