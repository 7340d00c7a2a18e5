"""What every subcommand of ``python -m benchmarks`` shares: the results folder and its files (a
``.log`` of what was printed, a ``.json`` of the figures, both overwritten by each run), the header
line (date, machine, torch, commit), preset configurations and the engine's version key."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ENGINE_ENTRY = "napari_scoredvi.engine.api"  # denoise(): the modules it imports are the engine


def preset_config(spec: str):
    """A preset from a configuration string: a preset name with optional overrides of its fields,
    e.g. ``fast``, ``balanced:ensemble=4``, ``fast:stabilise=False`` (``dataclasses.replace``; the
    preset is renamed to the whole string). ValueError for an unknown preset or field."""
    from napari_scoredvi.engine.presets import get_preset

    name, _, over = spec.partition(":")
    cfg = get_preset(name)
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    changes: dict = {}
    for item in filter(None, over.split(",")):
        key, _, value = item.partition("=")
        if key not in fields or key == "name":
            raise ValueError(f"{spec!r}: the {cfg.kind} preset {name!r} has no field {key!r}; its fields: "
                             f"{', '.join(k for k in fields if k != 'name')}")
        kind = type(getattr(cfg, key))
        changes[key] = value.strip().lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return dataclasses.replace(cfg, name=spec, **changes) if changes else cfg


def preset_arg(spec: str) -> str:
    """``argparse`` type of a configuration string: checked by :func:`preset_config`, kept as text."""
    import argparse

    try:
        preset_config(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return spec


def preset_from_dict(fields: dict):
    """The preset whose ``as_dict()`` is ``fields`` (how cached rows carry their preset)."""
    from napari_scoredvi.engine.presets import EnsemblePreset, VariationalPreset

    cls = {c.kind: c for c in (EnsemblePreset, VariationalPreset)}[fields["kind"]]
    return cls(**{k: v for k, v in fields.items() if k != "kind"})


def machine(threads: int) -> str:
    """The CPU (its model name where Linux says it), cores, torch threads and torch's version."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {threads} torch thread(s), torch {torch.__version__}"


def commit() -> str:
    """This checkout's commit (``git describe --always --dirty``), or ``unknown`` outside git."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def engine_files() -> list[str]:
    """Repository paths of what ``denoise`` runs: the package's modules that importing
    :data:`ENGINE_ENTRY` loads (in a fresh interpreter) and the shipped prior weights, ``presets.py``
    left out (cached rows carry their whole preset)."""
    code = (f"import sys, {ENGINE_ENTRY}; print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
            "if n.split('.')[0] == 'napari_scoredvi' and getattr(m, '__file__', None)))")
    files = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    package = ROOT / "src" / "napari_scoredvi"
    paths = {Path(f).resolve() for f in files} | set((package / "engine" / "priors" / "weights").glob("*"))
    if not all(p.is_relative_to(ROOT) for p in paths):
        raise SystemExit(f"napari_scoredvi is not imported from {ROOT}: install it editable (pip install -e .)")
    return sorted(p.relative_to(ROOT).as_posix() for p in paths if p.name != "presets.py")


def engine_version() -> str:
    """A hash of the contents of :func:`engine_files`: cached rows of our method are reused only for
    the same engine (committing changes nothing; editing the engine or its weights recomputes them;
    the widget, the batch pipeline and the command line do not count)."""
    digest = hashlib.sha256()
    for name in engine_files():
        digest.update(name.encode() + (ROOT / name).read_bytes())
    return "engine-" + digest.hexdigest()[:16]


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` as JSON, atomically (its folder made if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class _Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


class Report:
    """One run of a subcommand: prints the header (``title``, date, machine, torch, commit), copies
    everything printed to ``<results>/<name>.log`` and, with ``data`` filled in, writes
    ``<name>.json`` (the header's fields included). Both files replace the last run's only when the run
    ends without an error (until then the log is ``<name>.log.tmp``). ``name=None``: print only."""

    def __init__(self, name: str | None, results: Path, title: str, threads: int) -> None:
        self.name, self.results = name, Path(results)
        self.header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(threads),
                       "commit": commit(), "python": platform.python_version()}
        self.title = title
        self.data: dict = {}
        self._log: TextIO | None = None
        self._stdout: TextIO | None = None

    def path(self, suffix: str) -> Path:
        """``<results>/<name><suffix>``, e.g. ``.json``."""
        return self.results / f"{self.name}{suffix}"

    def __enter__(self) -> Report:
        if self.name is not None:
            self.results.mkdir(parents=True, exist_ok=True)
            self._log = open(self.path(".log.tmp"), "w")
            self._stdout = sys.stdout
            sys.stdout = _Tee(self._stdout, self._log)
        h = self.header
        print(f"{self.title}; {h['date']}; {h['machine']}; python {h['python']}; commit {h['commit']}", flush=True)
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self._log is None:
            return
        if kind is None and self.data:
            write_json(self.path(".json"), {**self.header, "title": self.title, **self.data})
            print(f"wrote {self.path('.json')}")
        if kind is None:
            print(f"wrote {self.path('.log')}")
        sys.stdout = self._stdout
        self._log.close()
        if kind is None:
            os.replace(self.path(".log.tmp"), self.path(".log"))
        else:
            print(f"stopped by {kind.__name__}: the partial log is {self.path('.log.tmp')}", file=sys.stderr)
