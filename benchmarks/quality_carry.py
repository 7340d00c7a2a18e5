"""Carry ``quality.py``'s cached rows of our method (ours, direct prior) from an older engine key to
the current one, for the images whose noise the engine classifies as pixel-independent; the rows
of the others stay under the old key, so ``quality.py`` computes them again.

Only for an engine change that leaves the denoised image of pixel-independent noise bit-for-bit
as it was (2026-11-30: the texture test of correlated noise and the posterior std's scale, which
``quality.py`` does not score; W2S rows recomputed before carrying matched to 6 decimals). With
``--all``, every image's rows: for a change that leaves every denoised image as it was (2026-11-30:
where the noise-variance map is read; ``fidelity.py``'s PSNR columns, before and after, show it).
``--sets`` limits the carry to those sets: with ``--all``, for a change no image of the other sets
can see (2026-12-01: new colour priors, which grey images never load). With ``--correlated``, the
rows of the images whose noise the engine reads as correlated, for a change only the others can see
(2026-12-01: independent-noise priors fine-tuned for the variance-stabilised presets).

    python benchmarks/quality_carry.py --from engine-7fddfd867afe2827
    python benchmarks/quality_carry.py --from engine-5bd4e8cd279cd31a --all
    python benchmarks/quality_carry.py --from engine-... --all --sets w2s pg corr set12
    python benchmarks/quality_carry.py --from engine-... --correlated
"""
import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import quality
from napari_scoredvi.engine.noise_estimate import estimate_noise
from napari_scoredvi.engine.normalise import fit_normalisation
from napari_scoredvi.engine.validate import as_channels_first

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--from", dest="old", required=True, help="the engine key the rows were computed with")
p.add_argument("--cache", type=Path, default=Path(__file__).parent / "results" / "ours_cache.json")
p.add_argument("--all", action="store_true", help="carry every image's rows (the change left every denoised image)")
p.add_argument("--correlated", action="store_true",
               help="carry the rows of the images whose noise the engine classifies as correlated instead (a change "
                    "of what only pixel-independent noise sees: the independent-noise priors, the stabilisation)")
p.add_argument("--sets", nargs="+", default=["w2s", "pg", "corr", "set12", "polyu", "cc"], choices=quality.SETS,
               help="carry only these sets' rows")
cli = p.parse_args()
OLD = cli.old
new_key = quality._engine_version()
path = cli.cache
cache = json.load(open(path))
args = SimpleNamespace(data=quality.sets.DATA, limit=None, per_source=2, conditions=None, sigma=25.0)
carried = kept = 0
for which in cli.sets:
    for item in quality.load(which, args):
        arr = as_channels_first(item.noisy, -1 if item.rgb else None)
        y = fit_normalisation(arr).to_model(arr)
        correlated = estimate_noise(y).correlated
        carry = cli.all or correlated == cli.correlated
        for k, v in cache.items():
            if k.startswith(f"{which}/{item.name}/") and v["settings"].get("engine") == OLD:
                if carry:
                    v["settings"]["engine"] = new_key
                    carried += 1
                else:
                    kept += 1
        kind = "correlated" if correlated else "independent"
        print(which, item.name, f"{kind}: " + ("carried" if carry else "recompute"), flush=True)
json.dump(cache, open(path, "w"), indent=1)
print(f"carried {carried} rows to {new_key}; {kept} rows left to recompute")
