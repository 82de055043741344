"""Accuracy cost of user-level DP-SGD for a SASRec-style model on Beauty, and membership-inference attacks.

Shoppers of Amazon Beauty with >= 4 items are shuffled with ``--seed`` and cut into three disjoint groups:
``--members`` training members, ``--nonmembers`` shoppers no target model ever sees, and ``--reference``
shoppers the attacker may use (a population sample disjoint from both). Every model is
:class:`shopkeep.models.dp_training.DPSeqRec` (sampled softmax with ``--negatives`` uniform negatives,
ghost clipping for DP, 1 torch thread: on 2 shared cores one thread ran ~2x faster than two).

Protocol (seqrec, all items ranked, history excluded): members train on ``s[:-2]``; *validation* is the
member's ``s[-2]`` given ``s[:-2]`` (a fixed sample of ``--val`` members), *test* is ``s[-1]`` given
``s[:-1]``. Choices are made on validation only:

* plain model: validation NDCG@10 after every epoch; the test figures are those of the best epoch;
* DP models: exactly ``--dp-epochs`` epochs (the noise is calibrated for them, no epoch selection); one
  run per ``--dp-lr`` and ε, and ``--merge`` keeps per ε the run with the best validation NDCG@10
  (the tuning itself looks at members' validation items and is not in the reported ε, as usual);
* ``pop``: counts over the members' training rows (a reference point; Beauty's published PopRec NDCG@10
  is 0.0068 over all shoppers).

Attacks, each over all members' training rows vs the same construction (``s[:-2]``) of every non-member:

* ``loss``: loss threshold (Yeom et al. 2018): "member" when the row's mean next-item cross-entropy is low;
* ``calibrated``: the row's loss minus a reference model's loss on it (Watson et al. 2022, the offline
  reference-model attack): the reference is trained without DP, same settings as the plain model, on the
  reference shoppers; calibration removes how hard a row is for *any* model of this kind;
* AUC = P(score of a random member < score of a random non-member), ties 1/2; 0.5 is a coin flip. The
  issue's target is AUC ≤ 0.55 with DP.

Usage: .venv/bin/python benchmarks/quality/dp_training.py [--eps 1,2,4,8] [--out ...]

Runs can be split across processes (one thread each): ``--ref-only --ref-cache R`` trains the reference
and writes its losses, the others pass ``--ref-cache R`` (and ``--no-plain`` for DP-only runs) and wait
for it; ``--merge A.md B.md ... --out X.md`` combines their result files. The commands of the published
table are listed in benchmarks/quality/results/dp_training_sweep.md.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from scipy.stats import rankdata

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.evaluation.metrics import mask_history, metric_table, target_ranks
from shopkeep.models.base import Interactions
from shopkeep.models.dp_training import DPSeqRec

SETTINGS: dict[str, Any] = {
    "d": 64,
    "n_layers": 1,
    "n_heads": 2,
    "max_len": 20,
    "dropout": 0.2,
    "dp_max_grad_norm": 1.0,
    "num_threads": 1,
}


def auc(member: np.ndarray[Any, Any], non: np.ndarray[Any, Any]) -> float:
    """P(a random member's score < a random non-member's score), ties counted 1/2 (Mann-Whitney)."""
    ranks = rankdata(np.concatenate([member, non]))  # average ranks over ties
    u_non = ranks[len(member) :].sum() - len(non) * (len(non) + 1) / 2  # pairs where the non-member's is higher
    return float(u_non / (len(member) * len(non)))


def accuracy(model: DPSeqRec, histories: list[np.ndarray[Any, Any]], targets: np.ndarray[Any, Any]) -> dict[str, float]:
    """NDCG@10 / HR@10 of ``targets`` given ``histories``, history excluded, all items ranked."""
    scores = model.score(histories)
    mask_history(scores, histories)
    return metric_table(target_ranks(scores, targets), (10,))


def pop_accuracy(
    train: Interactions, histories: list[np.ndarray[Any, Any]], targets: np.ndarray[Any, Any]
) -> dict[str, float]:
    """Popularity over the training rows, same protocol."""
    counts = np.bincount(np.concatenate(train.sequences), minlength=train.n_items).astype(np.float32)
    scores = np.tile(counts, (len(histories), 1))
    mask_history(scores, histories)
    return metric_table(target_ranks(scores, targets), (10,))


class Splits:
    """Members / non-members / reference shoppers and the member validation sample."""

    def __init__(self, data: Any, members: int, nonmembers: int, reference: int, val: int, seed: int) -> None:
        seqs = [s for s in data.sequences if s.size >= 4]
        if members + nonmembers + reference > len(seqs):
            raise SystemExit(f"only {len(seqs)} shoppers with >= 4 items; ask for fewer")
        order = np.random.default_rng(seed).permutation(len(seqs))
        self.n_users = len(seqs)
        self.members = [seqs[i] for i in order[:members]]
        self.others = [seqs[i] for i in order[members : members + nonmembers]]
        self.ref = [seqs[i] for i in order[members + nonmembers : members + nonmembers + reference]]
        self.train = Interactions(tuple(s[:-2] for s in self.members), data.n_items)
        self.ref_train = Interactions(tuple(s[:-2] for s in self.ref), data.n_items)
        pick = np.random.default_rng(seed + 1).choice(members, size=min(val, members), replace=False)
        self.val_hist = [self.members[i][:-2] for i in pick]
        self.val_target = np.array([self.members[i][-2] for i in pick])

    def test(self, group: list[np.ndarray[Any, Any]]) -> tuple[list[np.ndarray[Any, Any]], np.ndarray[Any, Any]]:
        """(histories, targets) of the test step: ``s[-1]`` given ``s[:-1]``."""
        return [s[:-1] for s in group], np.array([s[-1] for s in group])


def fit_best(
    settings: dict[str, Any], splits: Splits, train: Interactions, epochs: int, seed: int, console: Console, label: str
) -> tuple[DPSeqRec, list[float], int]:
    """Plain training for ``epochs`` with validation NDCG@10 after each; the model returned carries the
    weights of the best epoch. Returns (model, validation curve, best epoch)."""
    curve: list[float] = []
    best: dict[str, Any] = {"score": -1.0, "state": None, "epoch": 0}
    model = DPSeqRec(**settings, epochs=epochs, seed=seed)

    def watch(record: dict[str, float]) -> None:
        score = accuracy(model, splits.val_hist, splits.val_target)["ndcg@10"]
        curve.append(score)
        console.print(f"  {label} epoch {int(record['epoch'])} loss {record['loss']:.3f} val NDCG@10 {score:.4f}")
        if score > best["score"]:
            assert model.net_ is not None
            best.update(score=score, state=copy.deepcopy(model.net_.state_dict()), epoch=int(record["epoch"]))

    model.fit(train, on_epoch=watch)
    assert model.net_ is not None and best["state"] is not None
    model.net_.load_state_dict(best["state"])
    model.net_.eval()
    return model, curve, int(best["epoch"])


def attacks(model: DPSeqRec, splits: Splits, ref_loss: tuple[Any, Any] | None) -> tuple[float, float | None]:
    """(loss-threshold AUC, reference-calibrated AUC or None without a reference) over members vs non-members."""
    mem = model.row_losses([s[:-2] for s in splits.members])
    non = model.row_losses([s[:-2] for s in splits.others])
    return auc(mem, non), None if ref_loss is None else auc(mem - ref_loss[0], non - ref_loss[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--members", type=int, default=11000)
    parser.add_argument("--nonmembers", type=int, default=5600)
    parser.add_argument("--reference", type=int, default=5600)
    parser.add_argument("--val", type=int, default=2000, help="members in the validation sample")
    parser.add_argument("--epochs", type=int, default=40, help="plain (and reference) epochs; best on validation")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dp-epochs", type=int, default=30)
    parser.add_argument("--dp-lr", type=float, default=3e-3)
    parser.add_argument("--dp-batch", type=int, default=2048, help="expected (Poisson) batch with DP")
    parser.add_argument("--negatives", type=int, default=500)
    parser.add_argument("--eps", default="1,2,4,8")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain model")
    parser.add_argument(
        "--ref-cache",
        help="npz of the reference model's losses on members / non-members: written with --ref-only, "
        "otherwise read (waiting up to 60 min for it) instead of training a reference",
    )
    parser.add_argument("--ref-only", action="store_true", help="train the reference model, write --ref-cache, exit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dp_training_sweep.md"))
    parser.add_argument("--merge", nargs="+", help="combine these result files into --out and exit")
    args = parser.parse_args()
    console = Console()
    if args.merge:
        merge(args.merge, args.out)
        return
    torch.set_num_threads(1)
    data = load_dataset(Path(args.data) / "amazon-beauty-5core-seq", "seqrec")
    splits = Splits(data, args.members, args.nonmembers, args.reference, args.val, args.seed)
    delta = 1.0 / (10 * len(splits.members))
    base = {**SETTINGS, "negatives": args.negatives}
    plain_settings = {**base, "lr": args.lr, "batch_size": args.batch}
    dp_settings = {**base, "lr": args.dp_lr, "batch_size": args.dp_batch}
    mem_test, non_test = splits.test(splits.members), splits.test(splits.others)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    rows.append(
        {
            "training": "pop (members' counts)",
            "eps": None,
            "sigma": None,
            "val": pop_accuracy(splits.train, splits.val_hist, splits.val_target)["ndcg@10"],
            "mem": pop_accuracy(splits.train, *mem_test),
            "non": pop_accuracy(splits.train, *non_test),
            "loss_auc": None,
            "cal_auc": None,
            "fit_s": 0.0,
            "epochs": "-",
            "losses": [],
        }
    )
    ref_loss: tuple[Any, Any] | None = None
    if args.ref_only or not (args.no_plain or args.ref_cache):  # else the reference comes from --ref-cache
        t0 = time.perf_counter()
        ref, _, ref_epoch = fit_best(
            plain_settings, splits, splits.ref_train, args.epochs, args.seed + 100, console, "reference"
        )
        console.print(f"reference model: best epoch {ref_epoch}, {time.perf_counter() - t0:.0f} s")
        ref_loss = (ref.row_losses([s[:-2] for s in splits.members]), ref.row_losses([s[:-2] for s in splits.others]))
        if args.ref_cache:
            np.savez(args.ref_cache + ".tmp.npz", members=ref_loss[0], others=ref_loss[1])
            Path(args.ref_cache + ".tmp.npz").rename(args.ref_cache)
        if args.ref_only:
            return
    if not args.no_plain:
        t0 = time.perf_counter()
        plain, curve, best_epoch = fit_best(
            plain_settings, splits, splits.train, args.epochs, args.seed, console, "plain"
        )
        fit_s = time.perf_counter() - t0
        if ref_loss is None and args.ref_cache:
            ref_loss = _wait_for_ref(args.ref_cache, console)
        loss_auc, cal_auc = attacks(plain, splits, ref_loss)
        rows.append(
            {
                "training": "plain",
                "eps": None,
                "sigma": None,
                "val": max(curve),
                "mem": accuracy(plain, *mem_test),
                "non": accuracy(plain, *non_test),
                "loss_auc": loss_auc,
                "cal_auc": cal_auc,
                "fit_s": fit_s,
                "epochs": f"{best_epoch} of {args.epochs}",
                "losses": [h["loss"] for h in plain.history_],
            }
        )
        console.print(rows[-1])
    for eps in (float(e) for e in args.eps.split(",") if e):
        t0 = time.perf_counter()
        model = DPSeqRec(**dp_settings, epochs=args.dp_epochs, dp_epsilon=eps, dp_delta=delta, seed=args.seed)
        model.fit(
            splits.train,
            on_epoch=lambda r, e=eps: console.print(
                f"  eps {e:g} epoch {int(r['epoch'])} loss {r['loss']:.3f} spent {r['epsilon']:.2f}"
            ),
        )
        fit_s = time.perf_counter() - t0
        if ref_loss is None and args.ref_cache:
            ref_loss = _wait_for_ref(args.ref_cache, console)
        loss_auc, cal_auc = attacks(model, splits, ref_loss)
        rows.append(
            {
                "training": "DP-SGD",
                "eps": (model.epsilon_, model.delta_),
                "sigma": model.noise_multiplier_,
                "val": accuracy(model, splits.val_hist, splits.val_target)["ndcg@10"],
                "mem": accuracy(model, *mem_test),
                "non": accuracy(model, *non_test),
                "loss_auc": loss_auc,
                "cal_auc": cal_auc,
                "fit_s": fit_s,
                "epochs": str(args.dp_epochs),
                "losses": [h["loss"] for h in model.history_],
            }
        )
        console.print(rows[-1])
    write(args, rows, splits, data, delta, plain_settings, dp_settings, time.perf_counter() - start, console)


def merge(paths: list[str], out: str) -> None:
    """One table from several runs' result files (same seed and splits): every row, then per ε the DP run
    with the best validation NDCG@10 (the learning rate is chosen on validation, never on test)."""
    import re

    rows: list[tuple[str, str, str]] = []  # (row, command, file)
    header: list[str] = []
    for path in paths:
        lines = Path(path).read_text().splitlines()
        command = next((ln for ln in lines if ln.startswith("Command:")), "")
        header = header or lines[:6]
        rows += [(ln, command, path) for ln in lines if ln.startswith("| ") and not ln.startswith("| training")]
    seen: set[str] = set()
    unique = [r for r in rows if not (r[0] in seen or seen.add(r[0]))]  # type: ignore[func-returns-value]
    best: dict[str, tuple[float, str]] = {}
    tagged: list[str] = []
    for row, command, _ in unique:
        cells = [c.strip() for c in row.strip("|").split("|")]
        lr = re.search(r"--dp-lr (\S+)", command)
        tagged.append(f"{row} {lr.group(1) if lr and cells[0] == 'DP-SGD' else '-'} |")
        if cells[0] == "DP-SGD":
            eps = cells[1].split(" ")[0]
            if eps not in best or float(cells[4]) > best[eps][0]:
                best[eps] = (float(cells[4]), tagged[-1])
    head = [header[4] + " dp lr |", header[5] + "---|"] if len(header) >= 6 else []
    text = [*header[:3], "Chosen per ε (the DP learning rate with the best validation NDCG@10):", "", *head]
    text += [t for t in tagged if not t.startswith("| DP-SGD")] + [best[e][1] for e in sorted(best, key=float)]
    text += ["", "Every run:", "", *head, *tagged, "", "Commands:", ""]
    text += sorted({f"* {c.removeprefix('Command: ')}" for _, c, _ in unique})
    Path(out).write_text("\n".join(text) + "\n")


def _wait_for_ref(path: str, console: Console, timeout_s: float = 3600.0) -> tuple[Any, Any] | None:
    """The reference losses another process writes to ``path`` (None if it never does)."""
    deadline = time.monotonic() + timeout_s
    while not Path(path).exists():
        if time.monotonic() > deadline:
            console.print(f"no reference losses at {path}: the calibrated attack is left out")
            return None
        time.sleep(10)
    found = np.load(path)
    return found["members"], found["others"]


def _f(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    splits: Splits,
    data: Any,
    delta: float,
    plain: dict[str, Any],
    dp: dict[str, Any],
    seconds: float,
    console: Console,
) -> None:
    """The results table (markdown) to ``args.out``."""
    import os

    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"# User-level DP-SGD (Opacus) on {data.name}: accuracy and membership inference",
        "",
        f"{hardware_summary()}; load average at the end {load}; {seconds:.0f} s in all; seed {args.seed}; "
        f"{len(splits.members)} members, {len(splits.others)} non-members, {len(splits.ref)} reference "
        f"shoppers (of {splits.n_users} with >= 4 items); {data.n_items} items; δ = {delta:.1e}; "
        f"plain {plain}; DP {dp}",
        "",
        "| training | ε (δ) | noise σ | epochs | val NDCG@10 | members NDCG@10 | HR@10 | non-members NDCG@10 | "
        "loss-attack AUC | calibrated-attack AUC | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        privacy = "none" if r["eps"] is None else f"{r['eps'][0]:.2f} ({r['eps'][1]:.1e})"
        lines.append(
            f"| {r['training']} | {privacy} | {_f(r['sigma'], 3)} | {r['epochs']} | {_f(r['val'])} | "
            f"{r['mem']['ndcg@10']:.4f} | {r['mem']['hr@10']:.4f} | {r['non']['ndcg@10']:.4f} | "
            f"{_f(r['loss_auc'], 3)} | {_f(r['cal_auc'], 3)} | {r['fit_s']:.0f} |"
        )
    lines += [
        "",
        "Loss per epoch: "
        + "; ".join(
            r["training"]
            + ("" if r["eps"] is None else " eps {:.2f}".format(r["eps"][0]))
            + ": "
            + ", ".join(f"{x:.3f}" for x in r["losses"])
            for r in rows
            if r["losses"]
        ),
        "",
        f"Command: `nice -n 10 .venv/bin/python benchmarks/quality/dp_training.py --members {args.members} "
        f"--nonmembers {args.nonmembers} --reference {args.reference} --epochs {args.epochs} --lr {args.lr:g} "
        f"--batch {args.batch} --dp-epochs {args.dp_epochs} --dp-lr {args.dp_lr:g} --dp-batch {args.dp_batch} "
        f"--negatives {args.negatives} --eps {args.eps} --seed {args.seed}{' --no-plain' if args.no_plain else ''}`",
        "",
    ]
    text = "\n".join(lines)
    console.print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
