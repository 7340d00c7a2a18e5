"""Does the variational fit correct priors that do not match the noise?

On the correlated-noise set (``sets.synthetic("corr")``) the engine normally loads the priors
fine-tuned with correlated noise. Here it is made to load the priors trained on pixel-independent
noise only (as the method's Gaussian-trained priors meet real camera noise), and the ``fast``
preset is scored with 0 fit steps (priors only) and with its fit: if the fit corrects a prior
mismatch, the second row gains.

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

    import napari_scoredvi.engine.api as api
    from napari_scoredvi import denoise

    torch.set_num_threads(args.threads)
    load = api.load_priors
    preset = sets.preset_config(args.preset)
    no_fit = dataclasses.replace(preset, iterations=0, warm_iterations=0)
    gains = {"matched": [], "mismatched": []}
    for item in sets.synthetic("corr", sets.DATA, args.per_source):
        score, _ = quality.scorer("corr", item)
        for which in gains:
            # mismatched: the priors for pixel-independent noise, whatever the engine measured
            api.load_priors = load if which == "matched" else (lambda dev, correlated=False: load(dev, False))
            before = score(denoise(item.noisy, preset=no_fit, seed=0).denoised)[0]
            after = score(denoise(item.noisy, preset=preset, seed=0).denoised)[0]
            gains[which].append((before, after))
            print(f"{item.name} {which:10s} priors only {before:6.2f}  fit {after:6.2f}  gain {after - before:+.2f} dB",
                  flush=True)
    api.load_priors = load
    for which, rows in gains.items():
        b, a = np.mean(rows, axis=0)
        print(f"mean, {which} priors: priors only {b:.2f} dB, fit {a:.2f} dB, gain {a - b:+.2f} dB")


if __name__ == "__main__":
    main()
