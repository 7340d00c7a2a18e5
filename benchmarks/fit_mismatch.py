"""Does the variational fit correct priors that do not match the noise?

On the correlated-noise set (``sets.synthetic("corr")``) the engine normally loads the priors
fine-tuned with correlated noise (it measures the noise as correlated on all 36 images:
``results/noise_correlation.log``). Here each image is denoised with the prior set chosen through
``DenoiseSettings.priors``: ``correlated`` (matched) and ``independent`` (the priors trained on
pixel-independent noise only, as the method's Gaussian-trained priors meet real camera noise:
mismatched), and the ``fast`` preset is scored with 0 fit steps (priors only) and with its fit: if
the fit corrects a prior mismatch, the second row gains.

    python benchmarks/fit_mismatch.py --per-source 1   # -> benchmarks/results/fit_mismatch.log (tee)
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

import quality
import sets


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-source", type=int, default=1)
    p.add_argument("--preset", default="fast")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    from napari_scoredvi.engine.api import denoise_steps, finish
    from napari_scoredvi.engine.settings import DenoiseSettings

    torch.set_num_threads(args.threads)
    preset = sets.preset_config(args.preset)
    no_fit = dataclasses.replace(preset, iterations=0, warm_iterations=0)
    prior_set = {"matched": "correlated", "mismatched": "independent"}
    gains = {"matched": [], "mismatched": []}
    for item in sets.synthetic("corr", sets.DATA, args.per_source):
        score, _ = quality.scorer("corr", item)
        for which in gains:
            settings = DenoiseSettings(preset, seed=0, priors=prior_set[which])
            before = score(finish(denoise_steps(item.noisy, settings.with_(preset=no_fit))).denoised)[0]
            after = score(finish(denoise_steps(item.noisy, settings)).denoised)[0]
            gains[which].append((before, after))
            print(f"{item.name} {which:10s} priors only {before:6.2f}  fit {after:6.2f}  gain {after - before:+.2f} dB",
                  flush=True)
    for which, rows in gains.items():
        b, a = np.mean(rows, axis=0)
        print(f"mean, {which} priors: priors only {b:.2f} dB, fit {a:.2f} dB, gain {a - b:+.2f} dB")


if __name__ == "__main__":
    main()
