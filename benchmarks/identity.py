"""Denoise a fixed set of images (2 Set12, 2 W2S, 2 PolyU, 2 CC, 1 FMDD crop, one tiled 1100x1100) with
fast and balanced and save every output, to compare two revisions bit for bit:

    git worktree add /tmp/base REV
    PYTHONPATH=/tmp/base/src python benchmarks/identity.py /tmp/base.npz
    python benchmarks/identity.py /tmp/new.npz
    python -c "import numpy as np; a, b = np.load('/tmp/base.npz'), np.load('/tmp/new.npz'); \
print([k for k in a.files if not np.array_equal(a[k], b[k], equal_nan=True)])"
"""

import glob
import sys

import numpy as np
import tifffile
import torch
from PIL import Image

from napari_scoredvi.engine.api import denoise

torch.set_num_threads(2)
D = "/work/shared/datasets"
def grey(p): return np.asarray(Image.open(p).convert("L"))
def rgb(p): return np.asarray(Image.open(p).convert("RGB"))
imgs = {}
rng = np.random.default_rng(0)
for p in sorted(glob.glob(f"{D}/bsd/Set12/*.png"))[:2]:
    c = grey(p).astype(np.float64)[:256, :256]
    imgs["set12_" + p.split("/")[-1]] = (np.clip(c + rng.normal(0, 25, c.shape), 0, 255), None, False)
for p in sorted(glob.glob(f"{D}/w2s/noisy_avg1/*.tif"))[:2]:
    imgs["w2s_" + p.split("/")[-1]] = (tifffile.imread(p)[:256, :256], None, False)
for p in sorted(glob.glob(f"{D}/polyu/*real*"))[:2]:
    imgs["polyu_" + p.split("/")[-1]] = (rgb(p)[:192, :192], -1, True)
for p in sorted(glob.glob(f"{D}/cc/*real*"))[:2]:
    imgs["cc_" + p.split("/")[-1]] = (rgb(p)[:192, :192], -1, True)
for p in sorted(glob.glob(f"{D}/fmdd_frames/raw/*/*.png"))[:1]:
    imgs["fmdd_" + p.split("/")[-1]] = (grey(p)[:256, :256], None, False)
first = grey(sorted(glob.glob(f"{D}/bsd/Set12/*.png"))[0])
big = (rng.poisson(np.tile(first, (5, 5))[:1100, :1100] / 4.0) * 40 + 100).astype(np.uint16)
imgs["tiled1100_u16"] = (big, None, False)
out = {}
for name, (im, ca, isrgb) in imgs.items():
    for preset in ("fast", "balanced"):
        if name.startswith("tiled") and preset == "balanced":
            continue
        r = denoise(im, channel_axis=ca, preset=preset, seed=3, rgb=isrgb)
        for k in ("denoised", "noise_variance", "posterior_std"):
            out[f"{name}|{preset}|{k}"] = getattr(r, k)
        print(name, preset, f"{r.info.seconds:.1f}s", r.info.prior_set, r.info.drifted, flush=True)
np.savez(sys.argv[1], **out)
