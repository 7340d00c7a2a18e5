"""Report the learning curves of prior-denoiser training runs (``curve.jsonl`` written by train_priors.py).

Run ``python training/curves.py RUN [RUN ...] [--plot PATH.png] [--reference "LABEL=VALUE_DB" ...]``.
For each run folder it prints a markdown table of the test-set PSNR (dB) at sigma 15, 25 and 50: the blind
(``shared``) stage by step, then the per-noise-range fine-tuning stages ``prior0``, ``prior1``, ``prior2``.
A resumed run may log the same (stage, step) twice: the last line wins. Malformed or truncated lines (a killed
write) are skipped with a warning on stderr. ``--plot`` also draws one panel per run, PSNR against the blind
stage's step, the fine-tuned priors' final values at (last shared step + their step, nudged apart), and
every ``--reference`` as a dashed horizontal line on the first run's panel; the PNG is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

SIGMAS = (15, 25, 50)
STAGES = ("shared", "prior0", "prior1", "prior2")
PRIOR_MARKERS = {"prior0": "s", "prior1": "^", "prior2": "D"}


def _warn(message: str) -> None:
    """Print a warning on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def _parse_line(line: str) -> dict | None:
    """One curve point ``{"stage", "step", "sigma15", "sigma25", "sigma50"}``, or None if the line is unusable."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("stage"), str):
        return None
    step = obj.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    row = {"stage": obj["stage"], "step": step}
    for s in SIGMAS:
        value = obj.get(f"sigma{s}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        row[f"sigma{s}"] = float(value)
    return row


def _stage_order(stage: str) -> tuple[int, str]:
    """Sort key: shared first, then prior0, prior1, prior2, then any other stage by name."""
    return (STAGES.index(stage), "") if stage in STAGES else (len(STAGES), stage)


def read_curve(path: str | Path) -> list[dict]:
    """The points of a ``curve.jsonl``: bad lines skipped (warned), last line kept per (stage, step), sorted."""
    path = Path(path)
    points: dict[tuple[str, int], dict] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = _parse_line(line)
            if row is None:
                _warn(f"{path}:{number}: skipped a malformed or incomplete line: {line.strip()[:80]!r}")
                continue
            points[(row["stage"], row["step"])] = row
    return sorted(points.values(), key=lambda r: (_stage_order(r["stage"]), r["step"]))


def markdown_table(rows: list[dict]) -> str:
    """A markdown table of the points: stage, step (thousands separator), PSNR at each sigma to 2 decimals."""
    lines = ["| stage | step | " + " | ".join(f"sigma {s}" for s in SIGMAS) + " |",
             "|---|---:|" + "---:|" * len(SIGMAS)]
    for r in rows:
        values = " | ".join(f"{r[f'sigma{s}']:.2f}" for s in SIGMAS)
        lines.append(f"| {r['stage']} | {r['step']:,} | {values} |")
    return "\n".join(lines)


def _draw_run(ax, name: str, rows: list[dict], references: list[tuple[str, float]], colors: dict) -> None:
    """One panel: the shared stage as lines, the priors' final values as markers, the references dashed."""
    shared = [r for r in rows if r["stage"] == "shared"]
    last_shared = shared[-1]["step"] if shared else 0
    for s in SIGMAS:
        if shared:
            ax.plot([r["step"] for r in shared], [r[f"sigma{s}"] for r in shared], "o-", ms=3, lw=1.2,
                    color=colors[s])
    x_max = last_shared + max((r["step"] for r in rows if r["stage"] in PRIOR_MARKERS), default=0)
    dodge = 0.015 * max(x_max, 1)  # 1.5 % of the x range
    for k, (stage, marker) in enumerate(PRIOR_MARKERS.items()):
        points = [r for r in rows if r["stage"] == stage]
        if points:
            final = points[-1]
            x = last_shared + final["step"] + (k - 1) * dodge  # nudged apart so the three priors don't overlap
            for s in SIGMAS:
                ax.plot(x, final[f"sigma{s}"], marker, ms=7, color=colors[s], markeredgecolor="black",
                        markeredgewidth=0.6)
    for (_, value), style in zip(references, _reference_styles()):
        ax.axhline(value, ls="--", lw=1, color=style)
    ax.xaxis.set_major_formatter("{x:,.0f}")
    ax.set_title(name)
    ax.set_xlabel("blind-stage step (Adam steps)")
    ax.set_ylabel("test-set PSNR (dB)")
    ax.grid(True, alpha=0.3)


def _reference_styles() -> list[str]:
    """Colours of the reference lines, in order."""
    return ["dimgray", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"] * 4


def plot(runs: dict[str, list[dict]], path: str | Path, references: list[tuple[str, float]] | None = None) -> None:
    """Draw one PSNR-against-step panel per run and write it to ``path`` (PNG, atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    references = list(references or [])
    colors = {15: "tab:blue", 25: "tab:orange", 50: "tab:green"}
    n = max(len(runs), 1)
    fig = Figure(figsize=(10, 4.2), dpi=120, layout="constrained")
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    for i, (ax, (name, rows)) in enumerate(zip(axes, runs.items())):
        # a reference belongs to one test set (e.g. Set12 for the grey run): the first run's panel
        _draw_run(ax, name, rows, references if i == 0 else [], colors)
    for ax in axes[1:]:
        ax.set_ylabel("")
    handles = [Line2D([], [], color=colors[s], marker="o", ms=3, label=f"sigma {s}") for s in SIGMAS]
    present = {r["stage"] for rows in runs.values() for r in rows}
    handles += [Line2D([], [], ls="", marker=m, ms=7, color="lightgray", markeredgecolor="black",
                       label=f"{stage.replace('prior', 'prior ')} (final, fine-tuned)")
                for stage, m in PRIOR_MARKERS.items() if stage in present]
    handles += [Line2D([], [], ls="--", color=style, label=f"{label} ({value:.2f} dB)")
                for (label, value), style in zip(references, _reference_styles())]
    ncol = len(handles) if len(handles) <= 4 else 3  # columns: sigmas | priors | references
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize="small", frameon=False)
    _save_atomically(fig, Path(path))


def _save_atomically(fig, path: Path) -> None:
    """Save the figure to a temporary file beside ``path``, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder, so os.replace is atomic
    try:
        fig.savefig(tmp, format="png", dpi=120)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _reference(text: str) -> tuple[str, float]:
    """Parse ``LABEL=VALUE_DB`` (the last ``=`` splits, so the label may contain one)."""
    label, sep, value = text.rpartition("=")
    try:
        if not sep or not label.strip():
            raise ValueError
        return label.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LABEL=VALUE_DB, got {text!r}") from None


def running_hours(train_log: Path, gap_s: float = 600.0) -> float:
    """Hours the run was training: the sum of the gaps between consecutive time-stamped lines of its
    ``train.log`` that are at most ``gap_s`` apart (a longer gap is a stop or a pause); 0 without a log."""
    import datetime

    stamps = []
    try:
        lines = train_log.read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        try:
            stamps.append(datetime.datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
        except ValueError:
            continue
    gaps = ((b - a).total_seconds() for a, b in zip(stamps, stamps[1:]))
    return sum(g for g in gaps if 0 <= g <= gap_s) / 3600


def main(argv: list[str] | None = None) -> int:
    """Print each run's table; with ``--plot``, also draw the figure. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folder holding curve.jsonl")
    parser.add_argument("--plot", type=Path, metavar="PATH.png", help="also draw the curves to this PNG")
    parser.add_argument("--reference", type=_reference, action="append", default=[], metavar="LABEL=VALUE_DB",
                        help="a dashed horizontal line on the first run's panel, whose test set it "
                        "belongs to (repeatable)")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {}
    for run in args.runs:
        curve = run if run.is_file() else run / "curve.jsonl"
        name = (curve.parent if run.is_file() else run).resolve().name
        if name in runs:  # two runs of the same folder name: tell them apart by the path given
            name = str(run)
        try:
            rows = read_curve(curve)
        except OSError as e:
            _warn(f"{run}: cannot read {curve}: {e}")
            continue
        runs[name] = rows
        hours = running_hours(curve.parent / "train.log")
        wall = f"\ntraining wall time: {hours:.1f} h (train.log's lines at most 10 min apart)\n" if hours else ""
        print(f"### {name}\n\n{markdown_table(rows)}\n{wall}")
    if not runs:
        return 1
    if args.plot:
        plot(runs, args.plot, args.reference)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
