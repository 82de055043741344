"""The whole recommendation-quality table of issue #3 in one command: every model x Beauty, Toys
(seqrec) and Diginetica (sessions) x seeds, each run as its own `shopkeep evaluate --json` process.

Writes, under ``--out`` (default benchmarks/quality/results/full):
  runs/<dataset>__<model>__s<seed>.json   one run: the CLI's JSON + wall/CPU seconds + load average
  table.md                                 mean ± std over seeds, validation beside test, published best
                                           and the issue's targets, the hardware
  quality_vs_time.svg                      test NDCG@10 (seqrec) / MRR@20 (sessions) against train time

Finished runs are reused (``--rerun`` repeats them), so the table can be filled in over several sittings
and re-rendered alone with ``--render-only``. Times are the real figures on the machine that ran them:
wall seconds of the whole process (load, train, validate, test) and its CPU seconds (user + sys), with
the 1-minute load average at start and end, because a shared machine inflates wall time.

Usage:
  .venv/bin/python benchmarks/quality/full_table.py                       # everything, 3 seeds
  .venv/bin/python benchmarks/quality/full_table.py --datasets beauty --models itemknn,sasrec_knn --seeds 0
  .venv/bin/python benchmarks/quality/full_table.py --render-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shopkeep.evaluation.environment import hardware_summary

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATASETS: dict[str, tuple[str, str]] = {
    "beauty": ("amazon-beauty-5core-seq", "seqrec"),
    "toys": ("amazon-toys-5core-seq", "seqrec"),
    "diginetica": ("diginetica-cikm16/srgnn_split", "sessions"),
}
MODELS: dict[str, list[str]] = {
    "seqrec": ["pop", "segment_pop", "als", "itemknn", "sasrec", "sasrec_knn"],
    "sessions": ["pop", "segment_pop", "als", "itemknn", "session_knn", "sasrec_session", "sasrec_session_knn"],
}
# Best published figure we know (shared/data/PUBLISHED_RESULTS.md; issue #3's table) and the targets.
PUBLISHED = {
    "beauty": ("SASRec + sampled softmax (uSASRec)", {"ndcg@10": 0.0531, "hr@10": 0.0928}),
    "toys": ("SASRec + sampled softmax", {"ndcg@10": 0.0580, "hr@10": 0.0970}),
    "diginetica": ("GCE-GNN (as reported)", {"p@20": 0.542, "mrr@20": 0.190}),
}
TARGETS = {
    "beauty": {"ndcg@10": 0.055, "hr@10": 0.095},
    "toys": {"ndcg@10": 0.060, "hr@10": 0.100},
    "diginetica": {"p@20": 0.545, "mrr@20": 0.192},
}
COLUMNS = {"seqrec": ["ndcg@10", "hr@10", "ndcg@20", "hr@20"], "sessions": ["p@20", "mrr@20", "hr@10", "ndcg@10"]}
PLOT_METRIC = {"seqrec": "ndcg@10", "sessions": "mrr@20"}


def _load1() -> float:
    return os.getloadavg()[0]


def run_one(data_root: Path, dataset: str, model: str, seed: int, out: Path) -> dict[str, Any]:
    """Run one `shopkeep evaluate` process; return its JSON plus wall/CPU seconds and load averages."""
    folder, fmt = DATASETS[dataset]
    cmd = [
        str(Path(sys.executable).parent / "shopkeep"),
        "evaluate",
        "--data",
        str(data_root / folder),
        "--format",
        fmt,
        "--model",
        model,
        "--seed",
        str(seed),
        "--json",
    ]
    load_start, start, cpu_start = _load1(), time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu_start  # runs are sequential: delta = this one
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record["metrics"] = {k: v for k, v in record.items() if "@" in k}  # the CLI prints test metrics flat
    record["run"] = {
        "command": " ".join(cmd[1:]).replace(str(data_root), "../shared/data"),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "load1_start": round(load_start, 2),
        "load1_end": round(_load1(), 2),
    }
    out.write_text(json.dumps(record, indent=1, sort_keys=True))
    return record


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _rows(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        grouped.setdefault((rec["_dataset"], rec["model"]), []).append(rec)
    return grouped


def render_table(records: list[dict[str, Any]]) -> str:
    """Markdown: per dataset, mean ± std over seeds of test metrics, validation, times; published; targets."""
    lines = ["# Recommendation quality, full ranking (issue #3)", "", hardware_summary(), ""]
    grouped = _rows(records)
    for dataset, (folder, fmt) in DATASETS.items():
        models = [m for m in MODELS[fmt] if (dataset, m) in grouped]
        if not models:
            continue
        cols = COLUMNS[fmt]
        lines += [
            f"## {dataset} ({fmt}; ../shared/data/{folder})",
            "",
            "| model | seeds | "
            + " | ".join(f"test {c}" for c in cols)
            + " | val metric | train s | wall s | CPU s | load | config |",
            "|---|---|" + "---|" * (len(cols) + 6),
        ]
        for model in models:
            runs = sorted(grouped[(dataset, model)], key=lambda r: r["seed"])
            test = [_mean_std([r["metrics"][c] for r in runs if c in r["metrics"]]) for c in cols]
            val_key = "ndcg@10" if fmt == "seqrec" else "mrr@20"
            val = _mean_std([r["validation"].get(val_key, float("nan")) for r in runs if r["validation"]])
            train = statistics.median(r["train_seconds"] for r in runs)
            wall = statistics.median(r["run"]["wall_seconds"] for r in runs)
            cpus = [r["run"]["cpu_seconds"] for r in runs if r["run"]["cpu_seconds"] is not None]
            cpu = f"{statistics.median(cpus):.0f}" if cpus else "–"
            load = max(max(r["run"]["load1_start"], r["run"]["load1_end"]) for r in runs)
            seeds = ",".join(str(r["seed"]) for r in runs)
            lines.append(
                f"| `{model}` | {seeds} | " + " | ".join(test) + f" | {val} ({val_key}) | {train:.0f} | {wall:.0f} | "
                f"{cpu} | ≤{load:.1f} | {runs[0]['config_hash']} |"
            )
        name, figures = PUBLISHED[dataset]
        pub = [f"{figures[c]:.4f}" if c in figures else "–" for c in cols]
        tgt = [f"≥ {TARGETS[dataset][c]:.3f}" if c in TARGETS[dataset] else "–" for c in cols]
        lines.append(f"| published best: {name} | – | " + " | ".join(pub) + " | | | | | | |")
        lines.append("| issue #3 target | – | " + " | ".join(tgt) + " | | | | | | |")
        lines.append("")
    lines += [
        "Times: median over seeds; `train s` = fit (+ refit) as the runner measures it, `wall s` = the whole",
        "process, `CPU s` = its user + system CPU. `load` = the highest 1-minute load average seen at a run's",
        "start or end: on a shared machine wall time grows with the load, CPU time much less.",
        "",
    ]
    return "\n".join(lines)


def render_plot(records: list[dict[str, Any]]) -> str:
    """An SVG: one panel per dataset, test quality (y) against median train seconds (log x) per model."""
    grouped = _rows(records)
    panels = [d for d in DATASETS if any(key[0] == d for key in grouped)]
    width, height, pad = 330, 260, 48
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * max(1, len(panels))}" height="{height}" '
        'font-family="sans-serif" font-size="11">'
    ]
    for i, dataset in enumerate(panels):
        fmt = DATASETS[dataset][1]
        metric = PLOT_METRIC[fmt]
        points = []
        for (ds, model), runs in grouped.items():
            if ds != dataset:
                continue
            t = max(1.0, statistics.median(r["train_seconds"] for r in runs))
            q = statistics.mean(r["metrics"][metric] for r in runs)
            points.append((model, t, q))
        x0 = i * width
        ymax = max([q for _, _, q in points] + [TARGETS[dataset].get(metric, 0.0)]) * 1.15
        tmax = max(t for _, t, _ in points) * 2

        def px(t: float) -> float:
            return x0 + pad + (math.log10(t) / math.log10(tmax)) * (width - pad - 15)  # noqa: B023

        def py(q: float) -> float:
            return height - pad - q / ymax * (height - pad - 25)  # noqa: B023

        parts.append(f'<text x="{x0 + width / 2}" y="15" text-anchor="middle" font-weight="bold">{dataset}</text>')
        parts.append(
            f'<line x1="{x0 + pad}" y1="{height - pad}" x2="{x0 + width - 10}" y2="{height - pad}" stroke="#333"/>'
        )
        parts.append(f'<line x1="{x0 + pad}" y1="25" x2="{x0 + pad}" y2="{height - pad}" stroke="#333"/>')
        parts.append(f'<text x="{x0 + width / 2}" y="{height - 12}" text-anchor="middle">train seconds (log)</text>')
        parts.append(
            f'<text x="{x0 + 12}" y="{height / 2}" transform="rotate(-90 {x0 + 12} {height / 2})" '
            f'text-anchor="middle">test {metric}</text>'
        )
        for tick in (1, 10, 100, 1000, 10000):
            if tick <= tmax:
                parts.append(f'<text x="{px(tick)}" y="{height - pad + 14}" text-anchor="middle">{tick}</text>')
        target = TARGETS[dataset].get(metric)
        if target:
            parts.append(
                f'<line x1="{x0 + pad}" y1="{py(target)}" x2="{x0 + width - 10}" y2="{py(target)}" '
                'stroke="#c00" stroke-dasharray="4 3"/>'
            )
            parts.append(
                f'<text x="{x0 + width - 12}" y="{py(target) - 3}" text-anchor="end" fill="#c00">target</text>'
            )
        for model, t, q in points:
            parts.append(f'<circle cx="{px(t):.1f}" cy="{py(q):.1f}" r="4" fill="#1f5fa8"/>')
            parts.append(f'<text x="{px(t) + 6:.1f}" y="{py(q) - 5:.1f}">{model} {q:.4f}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", help="comma-separated; default: every model of each dataset's format")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(HERE / "results" / "full"))
    parser.add_argument("--rerun", action="store_true", help="repeat runs whose JSON already exists")
    parser.add_argument("--render-only", action="store_true", help="only rebuild table.md and the plot")
    args = parser.parse_args()
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    todo = []
    for dataset in args.datasets.split(","):
        fmt = DATASETS[dataset][1]
        models = args.models.split(",") if args.models else MODELS[fmt]
        todo += [(dataset, m, s) for m in models if m in MODELS[fmt] for s in args.seeds]
    if not args.render_only:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("runs", total=len(todo))
            for dataset, model, seed in todo:
                target = out / "runs" / f"{dataset}__{model}__s{seed}.json"
                if target.exists() and not args.rerun:
                    bar.advance(task)
                    continue
                bar.update(task, description=f"{dataset} {model} seed {seed}")
                rec = run_one(Path(args.data), dataset, model, seed, target)
                console.print(f"{dataset} {model} s{seed}: {rec['metrics']} ({rec['run']['wall_seconds']} s wall)")
                bar.advance(task)
    records = []
    for path in sorted((out / "runs").glob("*.json")):
        rec = json.loads(path.read_text())
        rec["_dataset"] = path.name.split("__")[0]
        records.append(rec)
    (out / "table.md").write_text(render_table(records))
    (out / "quality_vs_time.svg").write_text(render_plot(records))
    sys.stdout.write((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
