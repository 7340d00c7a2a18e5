"""Where the contrast compression (bright structures dimmer, dark ones brighter) comes from.

Each stage of the default pipeline, on the same images, scored as ``fidelity.py`` scores the output:
PSNR and the bias of the brightest 10 % and the darkest 50 % of clean pixels in noise std.

* ``prior k``: one prior denoiser ``D_k(y)`` alone (the engine's normalisation, no ensemble), for
  each of the K priors of the image's noise type (independent or correlated), used or not;
* ``fast:final_denoise=false``: the priors the engine selects, mixed by the responsibilities
  (``sum_k r_k D_k(y)``), without the final pass;
* ``fast``: the same with the final pass (``sum_k r_k D_k(D_k(y))``);
* ``balanced:final_denoise=false`` and ``balanced``: the same averaged over 8 flips/rotations.

    python benchmarks/bias_sources.py --sets pg corr w2s --per-source 1 --limit 3 --threads 1
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

import sets
from fidelity import score
from measure import write_report

STAGES = ("fast:final_denoise=false", "fast", "balanced:final_denoise=false", "balanced")


def single_priors(noisy: np.ndarray) -> list[np.ndarray]:
    """``D_k(y)`` of each prior of the image's noise type, in the input's units (2D images)."""
    import torch

    from napari_scoredvi.engine.noise_estimate import estimate_noise
    from napari_scoredvi.engine.normalise import fit_normalisation
    from napari_scoredvi.engine.priors import load_priors

    arr = np.asarray(noisy, dtype=np.float64)[None]
    norm = fit_normalisation(arr)
    y = norm.to_model(arr)
    priors = load_priors("cpu", "correlated" if estimate_noise(y).correlated else "independent")
    with torch.no_grad():
        yt = torch.from_numpy(y.astype(np.float32))[None]
        return [norm.image_to_input(p(yt)[0].numpy().astype(np.float64))[0] for p in priors]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=sets.DATA)
    p.add_argument("--sets", nargs="+", default=["pg", "corr", "w2s"], choices=["pg", "corr", "w2s"])
    p.add_argument("--per-source", type=int, default=1)
    p.add_argument("--limit", type=int, default=3, help="W2S frames")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bias_sources.json")
    args = p.parse_args(argv)
    import torch

    from napari_scoredvi import denoise

    torch.set_num_threads(args.threads)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{platform.machine()}, torch {torch.__version__}", "sets": {}}
    print(f"bias sources, {report['date']}, {report['machine']}", flush=True)
    cols = ("psnr", "bias_bright", "bias_dark")
    for which in args.sets:
        items = sets.w2s(args.data, args.limit) if which == "w2s" else sets.synthetic(which, args.data,
                                                                                      args.per_source)
        per: dict[str, list] = {}
        for item in items:
            for k, out in enumerate(single_priors(item.noisy)):
                per.setdefault(f"prior {k}", []).append({"image": item.name, **score(item, out)})
            for stage in STAGES:
                r = denoise(item.noisy, preset=sets.preset_config(stage), device="cpu", seed=0, posterior_std=False)
                per.setdefault(stage, []).append({"image": item.name, **score(item, r.denoised)})
            print(f"{which} {item.name}: " + "; ".join(
                f"{name} " + " ".join(f"{rows[-1][c]:.3f}" for c in cols) for name, rows in per.items()), flush=True)
        print(f"\n{which}: {len(items)} images; mean (worst image) of PSNR, bright bias, dark bias")
        summary = {}
        for name, rows in per.items():
            mean = {c: float(np.mean([r[c] for r in rows])) for c in cols}
            worst = {c: float(max((r[c] for r in rows), key=abs)) for c in cols[1:]}
            summary[name] = {"mean": mean, "worst": worst}
            print(f"{name:30s} {mean['psnr']:8.3f} {mean['bias_bright']:8.3f} ({worst['bias_bright']:.3f})"
                  f" {mean['bias_dark']:8.3f} ({worst['bias_dark']:.3f})", flush=True)
        report["sets"][which] = {"summary": summary, "per_image": per}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
