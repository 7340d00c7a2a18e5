"""Would a right noise estimate help on PolyU? ``balanced`` on the PolyU crops of ``quality.py``,
with the engine's noise estimate and with an oracle one: each channel's level function replaced
by the constant variance of the true residual ``noisy - clean`` (model units), correlation as the
engine measured it, given to the engine as its noise model (``denoise_steps(..., noise_model=)``)::

    python benchmarks/polyu_oracle_noise.py | tee benchmarks/results/polyu_oracle_noise.log
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

import quality
import sets
from napari_scoredvi.engine.api import denoise_steps, finish
from napari_scoredvi.engine.noise_estimate import NoiseLevelFunction, estimate_noise
from napari_scoredvi.engine.normalise import fit_normalisation
from napari_scoredvi.engine.settings import DenoiseSettings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="balanced")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    settings = DenoiseSettings(args.preset, "cpu", seed=0)
    print(f"{'crop':36s} {'est var':>8s} {'true var':>8s} {'engine dB':>9s} {'oracle dB':>9s}  drifted engine/oracle")
    rows = []
    for item in sets.polyu():
        score, _ = quality.scorer("polyu", item)
        noisy, clean = (np.moveaxis(a.astype(np.float64), -1, 0) for a in (item.noisy, item.clean))
        norm = fit_normalisation(noisy)
        y = norm.to_model(noisy)  # the model units the engine estimates the noise in
        true_var = (y - norm.to_model(clean)).var(axis=(1, 2))
        engine_model = estimate_noise(y)  # what denoise_steps estimates itself when given no noise model
        oracle_model = dataclasses.replace(engine_model,
                                           levels=tuple(NoiseLevelFunction(0.0, float(v)) for v in true_var))
        out = {}
        for name, model in (("engine", None), ("oracle", oracle_model)):
            r = finish(denoise_steps(item.noisy, settings, channel_axis=-1, noise_model=model))
            out[name] = (score(r.denoised)[0], r.info.drifted, r.info.noise_std)
        est_var = np.mean([np.mean(f.variance(c)) * s**2 for f, c, s in
                           zip(engine_model.levels, y, norm.scale)])  # input (8-bit) units
        rows.append((out["engine"][0], out["oracle"][0]))
        print(f"{item.name[:36]:36s} {est_var:8.2f} {np.mean(true_var * norm.scale**2):8.2f} {out['engine'][0]:9.2f} "
              f"{out['oracle'][0]:9.2f}  {out['engine'][1]}/{out['oracle'][1]}", flush=True)
    engine_db, oracle_db = np.mean(rows, axis=0)
    print(f"mean over {len(rows)} crops: engine {engine_db:.2f} dB, oracle noise {oracle_db:.2f} dB ({args.preset})")


if __name__ == "__main__":
    main()
