"""Run one method and evaluate it the one way: `run_method(name, setup) -> MethodResult`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from addressclip.baselines.base import BaselineSetup, MethodOutput
from addressclip.baselines.registry import BASELINES
from addressclip.errors import AddressclipError
from addressclip.eval.evaluate import Evaluation, evaluate_scores


@dataclass
class MethodResult:
    name: str
    seed: int
    output: MethodOutput
    evaluation: Evaluation
    seconds: float

    def record(self) -> dict[str, object]:
        """The JSON row of results.json for this run."""
        output = self.output
        return {
            "method": self.name,
            "label": BASELINES[self.name].label if self.name in BASELINES else self.name,
            "seed": self.seed,
            "metrics": self.evaluation.metrics,
            "storage_bytes": output.storage_bytes,
            "storage_note": output.storage_note,
            "latency_ms": output.latency_ms,
            "train_seconds": output.train_seconds,
            "seconds": self.seconds,
            "hyper": output.hyper,
            "val": output.val,
            "checkpoint": str(output.checkpoint) if output.checkpoint else None,
        }


def known_baseline(name: str) -> None:
    if name not in BASELINES:
        raise AddressclipError(f"unknown baseline '{name}'; choose one of {', '.join(BASELINES)}")


def run_method(name: str, setup: BaselineSetup, runner=None) -> MethodResult:
    """Run baseline `name` (or `runner`, a function of the setup, e.g. an ablation) and evaluate it."""
    if runner is None:
        known_baseline(name)
        runner = BASELINES[name].run
    setup.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    output = runner(setup)
    rows = output.rows if output.rows is not None else setup.eval_rows
    evaluation = evaluate_scores(setup.data, np.asarray(rows), output.scores, scale=output.scale)
    exact = output.hyper.get("exact")
    if isinstance(exact, dict):  # chance: the expected accuracies replace one random draw's
        evaluation.metrics.update(exact)
        evaluation.metrics["accuracies"] = "expected value of a uniformly random ranking"
    return MethodResult(name, setup.seed, output, evaluation, time.perf_counter() - started)
