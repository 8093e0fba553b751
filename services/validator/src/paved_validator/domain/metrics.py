"""The model card's metric thresholds, checked against what the validator measured.

Latency metrics come from the sandboxed latency calls; quality metrics from the
model's predictions on the evaluation set, scored here, outside the sandbox, against
labels the model never saw. A declared threshold that cannot be checked when an
evaluation set *was* given is a failure; without an evaluation set, quality
thresholds are reported as not checked.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from paved_schemas.events import MetricThreshold

LATENCY_METRICS = ("latency_p95_ms", "latency_median_ms", "latency_max_ms")


def latency_metrics(samples_ms: list[float]) -> dict[str, float]:
    """Median, p95 and max of the latency samples (ms)."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {}
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "latency_median_ms": float(statistics.median(ordered)),
        "latency_p95_ms": float(p95),
        "latency_max_ms": float(ordered[-1]),
    }


Array = npt.NDArray[Any]


def _accuracy(y: Array, pred: Array, _: Array | None) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, pred))


def _f1(y: Array, pred: Array, _: Array | None) -> float:
    from sklearn.metrics import f1_score

    average = "binary" if len(np.unique(y)) <= 2 else "macro"
    return float(f1_score(y, pred, average=average))


def _precision(y: Array, pred: Array, _: Array | None) -> float:
    from sklearn.metrics import precision_score

    average = "binary" if len(np.unique(y)) <= 2 else "macro"
    return float(precision_score(y, pred, average=average, zero_division=0))


def _recall(y: Array, pred: Array, _: Array | None) -> float:
    from sklearn.metrics import recall_score

    average = "binary" if len(np.unique(y)) <= 2 else "macro"
    return float(recall_score(y, pred, average=average, zero_division=0))


def _auc(y: Array, _: Array, scores: Array | None) -> float:
    from sklearn.metrics import roc_auc_score

    if scores is None:
        raise ValueError("auc needs class scores: declare a second (probability) output")
    if scores.ndim == 2 and scores.shape[1] == 2:
        return float(roc_auc_score(y, scores[:, 1]))
    if scores.ndim == 2:
        return float(roc_auc_score(y, scores, multi_class="ovr"))
    return float(roc_auc_score(y, scores))


def _regression(name: str) -> Callable[[Array, Array, Array | None], float]:
    def metric(y: Array, pred: Array, _: Array | None) -> float:
        from sklearn import metrics

        pred = pred.reshape(y.shape) if pred.size == y.size else pred
        fn = {"mse": metrics.mean_squared_error, "mae": metrics.mean_absolute_error,
              "r2": metrics.r2_score}[name]  # fmt: skip
        return float(fn(y, pred))

    return metric


QUALITY_METRICS: dict[str, Callable[[Array, Array, Array | None], float]] = {
    "accuracy": _accuracy,
    "f1": _f1,
    "precision": _precision,
    "recall": _recall,
    "auc": _auc,
    "mse": _regression("mse"),
    "mae": _regression("mae"),
    "r2": _regression("r2"),
}
"""Metrics the validator can compute from predictions; card thresholds use these names."""


@dataclass(frozen=True)
class ThresholdResult:
    metric: str
    value: float | None
    threshold: MetricThreshold
    problem: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "min": self.threshold.min,
            "max": self.threshold.max,
            "ok": self.problem is None,
            "problem": self.problem,
        }


def _bound_problem(metric: str, value: float, t: MetricThreshold) -> str | None:
    if t.min is not None and value < t.min:
        return f"{metric} = {value:.4g}, below the declared minimum {t.min:g}"
    if t.max is not None and value > t.max:
        return f"{metric} = {value:.4g}, above the declared maximum {t.max:g}"
    return None


def quality_metrics(
    names: set[str], y: Array, predictions: Array, scores: Array | None
) -> tuple[dict[str, float], dict[str, str]]:
    """``(values, errors)`` for each requested quality metric."""
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in sorted(names):
        fn = QUALITY_METRICS.get(name)
        if fn is None:
            known = ", ".join([*sorted(QUALITY_METRICS), *LATENCY_METRICS])
            errors[name] = f"{name!r} is not a metric the validator can compute (known: {known})"
            continue
        try:
            values[name] = fn(y, predictions, scores)
        except Exception as exc:  # sklearn raises ValueError/TypeError for unusable inputs
            errors[name] = f"{name} could not be computed: {type(exc).__name__}: {exc}"[:500]
    return values, errors


def check_thresholds(
    thresholds: Mapping[str, MetricThreshold],
    measured: Mapping[str, float],
    errors: Mapping[str, str],
    *,
    evaluated: bool,
) -> tuple[list[ThresholdResult], list[str], list[str]]:
    """``(results, problems, unchecked)``: each threshold against what was measured."""
    results: list[ThresholdResult] = []
    problems: list[str] = []
    unchecked: list[str] = []
    for metric, t in sorted(thresholds.items()):
        if metric in measured:
            problem = _bound_problem(metric, measured[metric], t)
            results.append(ThresholdResult(metric, measured[metric], t, problem))
            if problem:
                problems.append(problem)
        elif metric in errors:
            results.append(ThresholdResult(metric, None, t, errors[metric]))
            problems.append(errors[metric])
        elif not evaluated and metric not in LATENCY_METRICS:
            results.append(ThresholdResult(metric, None, t, None))
            unchecked.append(metric)
        else:
            problem = f"{metric} was not measured"
            results.append(ThresholdResult(metric, None, t, problem))
            problems.append(problem)
    return results, problems, unchecked
