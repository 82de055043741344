"""Accuracy cost of user-level DP-SGD for a SASRec-style model on Beauty, and a membership-inference attack.

Shoppers of Amazon Beauty are shuffled with ``--seed``; the first ``--members`` are training members,
the next ``--members`` are non-members that no model ever sees. Every model is
:class:`shopkeep.models.dp_training.DPSeqRec` with the same fixed settings (chosen before any run,
nothing tuned on a test split): d=64, 1 layer, 2 heads, max_len 20, dropout 0.2, Adam lr 1e-3 (``--lr``),
expected batch 256 (``--batch``), ``--epochs`` epochs; once without DP and once per ``--eps`` with DP-SGD (clip 1.0,
δ = 1 / (10 · members), RDP accountant; ε is the accountant's figure after training).

Accuracy: seqrec protocol on the members (train on s[:-2]; test input s[:-1], target s[-1]; all items
ranked, history excluded): NDCG@10 and HR@10. The same figures on non-members show how the model does
for new shoppers (SASRec-style models need no retraining for them).

Attack: loss threshold (Yeom et al. 2018). For each shopper the row the model would train on
(s[:-2], the member's actual training row) gets its mean next-item cross-entropy; the attack says
"member" below a threshold. AUC over all thresholds = P(loss of a random member < loss of a random
non-member) (ties 1/2); 0.5 is a coin flip. The issue's target is AUC ≤ 0.55 with DP.

Usage: .venv/bin/python benchmarks/quality/dp_training.py [--data ../shared/data] [--members 3000]
       [--epochs 5] [--eps 8] [--seed 0] [--out benchmarks/quality/results/dp_training.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from scipy.stats import rankdata

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.evaluation.metrics import mask_history, metric_table, target_ranks
from shopkeep.models.base import Interactions
from shopkeep.models.dp_training import DPSeqRec

SETTINGS: dict[str, Any] = {"d": 64, "n_layers": 1, "n_heads": 2, "max_len": 20, "dropout": 0.2, "lr": 1e-3,
                            "batch_size": 256, "dp_max_grad_norm": 1.0}


def auc(member: np.ndarray[Any, Any], non: np.ndarray[Any, Any]) -> float:
    """P(a random member's loss < a random non-member's loss), ties counted 1/2 (Mann-Whitney)."""
    ranks = rankdata(np.concatenate([member, non]))  # average ranks over ties
    u_non = ranks[len(member):].sum() - len(non) * (len(non) + 1) / 2  # pairs where the non-member's loss is higher
    return float(u_non / (len(member) * len(non)))


def accuracy(model: DPSeqRec, seqs: list[np.ndarray[Any, Any]]) -> dict[str, float]:
    """NDCG@10 / HR@10 of the last item given the rest, history excluded, all items ranked."""
    histories = [s[:-1] for s in seqs]
    scores = model.score(histories)
    mask_history(scores, histories)
    return metric_table(target_ranks(scores, np.array([s[-1] for s in seqs])), (10,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--eps", default="8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=SETTINGS["lr"])
    parser.add_argument("--batch", type=int, default=SETTINGS["batch_size"], help="expected batch (Poisson with DP)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dp_training.md"))
    args = parser.parse_args()
    console = Console()
    data = load_dataset(Path(args.data) / "amazon-beauty-5core-seq", "seqrec")
    seqs = [s for s in data.sequences if s.size >= 4]
    order = np.random.default_rng(args.seed).permutation(len(seqs))
    members = [seqs[i] for i in order[:args.members]]
    others = [seqs[i] for i in order[args.members:2 * args.members]]
    train = Interactions(tuple(s[:-2] for s in members), data.n_items)
    settings = {**SETTINGS, "lr": args.lr, "batch_size": args.batch}
    delta = 1.0 / (10 * len(members))
    rows = []
    runs: list[float | None] = [None, *(float(e) for e in args.eps.split(",") if e)]
    start = time.perf_counter()
    with Progress(console=console) as bar:
        task = bar.add_task("DPSeqRec runs", total=len(runs))
        for eps in runs:
            t0 = time.perf_counter()
            model = DPSeqRec(**settings, epochs=args.epochs, dp_epsilon=eps, dp_delta=delta if eps else None,
                             seed=args.seed).fit(train)
            fit_s = time.perf_counter() - t0
            attack = auc(model.row_losses([s[:-2] for s in members]), model.row_losses([s[:-2] for s in others]))
            rows.append((eps, model, fit_s, accuracy(model, members), accuracy(model, others), attack))
            console.print(f"eps={eps} epsilon_={model.epsilon_} fit {fit_s:.0f} s members {rows[-1][3]} "
                          f"non-members {rows[-1][4]} attack AUC {attack:.3f}")
            bar.advance(task)
    lines = [f"# User-level DP-SGD (Opacus) on {data.name}: accuracy and membership inference", "",
             f"{hardware_summary()}; {time.perf_counter() - start:.0f} s in all; seed {args.seed}; "
             f"{len(members)} member and {len(others)} non-member shoppers (of {len(seqs)} with >= 4 items); "
             f"{data.n_items} items; {args.epochs} epochs; settings {settings}", "",
             "| training | ε (δ) | noise σ | members NDCG@10 | HR@10 | non-members NDCG@10 | attack AUC | fit s |",
             "|---|---|---|---|---|---|---|---|"]
    for eps, model, fit_s, acc, acc_new, attack in rows:
        privacy = "none" if eps is None else f"{model.epsilon_:.2f} ({model.delta_:.1e})"
        sigma = "-" if model.noise_multiplier_ is None else f"{model.noise_multiplier_:.3f}"
        lines.append(f"| {'DP-SGD' if eps else 'plain'} | {privacy} | {sigma} | {acc['ndcg@10']:.4f} | "
                     f"{acc['hr@10']:.4f} | {acc_new['ndcg@10']:.4f} | {attack:.3f} | {fit_s:.0f} |")
    lines += ["", "Loss per epoch: " + "; ".join(
        f"{'plain' if eps is None else f'eps {eps:g}'}: " + ", ".join(f"{h['loss']:.3f}" for h in m.history_)
        for eps, m, *_ in rows), "",
        f"Command: `.venv/bin/python benchmarks/quality/dp_training.py --members {args.members} --epochs "
        f"{args.epochs} --eps {args.eps} --seed {args.seed} --lr {args.lr:g} --batch {args.batch}`", ""]
    text = "\n".join(lines)
    console.print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
