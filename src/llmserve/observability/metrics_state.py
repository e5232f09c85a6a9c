"""The state gauges: queue length, running requests, breaker states and loaded models.

Unlike the counters and histograms the pipeline pushes as things happen, these describe what the
process looks like now, so they are read from a ``StateSnapshot`` source: at scrape time by
``StateCollector`` in a single process, or pushed by every worker around its requests in multiprocess
mode (``metrics_multiprocess``). Names outside the configured model groups and deployments fold into
one ``other`` series, so the label sets stay bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

OTHER = "other"  # any model, deployment, cache type or rule outside the bounded set
# llmserve_deployment_state: the circuit breaker's state as a number (alerts compare with 2).
DEPLOYMENT_STATE_VALUES: Mapping[str, int] = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True)
class StateSnapshot:
    """What this process looks like now; read at scrape time (or pushed per request, multiprocess)."""

    queue_length: Mapping[str, int] = field(default_factory=dict)  # model group -> requests waiting
    running: Mapping[str, int] = field(default_factory=dict)  # model group -> requests holding a slot
    deployment_states: Mapping[str, str] = field(default_factory=dict)  # id -> closed|half_open|open
    model_loaded: Mapping[str, bool] = field(default_factory=dict)  # local model group -> weights in memory


StateSource = Callable[[], StateSnapshot]
# Per state gauge, label value -> value.
StateValues = dict[str, dict[str, float]]
Fold = Literal["sum", "max"]
GaugeMode = Literal["livesum", "livemax"]


class StateGauge(NamedTuple):
    name: str
    documentation: str
    label: str
    fold: Fold  # how values of labels outside the bounded set combine into "other"
    multiprocess_mode: GaugeMode  # how the workers' values combine


STATE_GAUGES = (
    StateGauge("llmserve_queue_length", "Requests waiting for an admission slot", "model", "sum", "livesum"),
    StateGauge("llmserve_requests_running", "Requests holding an admission slot", "model", "sum", "livesum"),
    StateGauge(
        "llmserve_deployment_state",
        "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open (worst over workers)",
        "deployment",
        "max",
        "livemax",
    ),
    StateGauge(
        "llmserve_model_loaded",
        "1 while a local model's weights are in memory (in any worker), else 0",
        "model",
        "max",
        "livemax",
    ),
)


def no_state() -> StateValues:
    """Every state gauge with no series: what a scrape shows without a (working) source."""
    return {spec.name: {} for spec in STATE_GAUGES}


def state_values(
    snapshot: StateSnapshot, models: Mapping[str, str], deployments: Mapping[str, str]
) -> StateValues:
    """The gauges' values for ``snapshot``. ``models`` and ``deployments`` map each configured name
    to its label (in order); they report 0 when the snapshot does not mention them."""
    result = no_state()
    queue, running, states, loaded = (result[spec.name] for spec in STATE_GAUGES)
    queue.update(dict.fromkeys(models, 0.0))
    running.update(dict.fromkeys(models, 0.0))
    states.update(dict.fromkeys(deployments, 0.0))
    _fold(queue, snapshot.queue_length.items(), models, "sum")
    _fold(running, snapshot.running.items(), models, "sum")
    known_states = (
        (deployment, DEPLOYMENT_STATE_VALUES[state])
        for deployment, state in snapshot.deployment_states.items()
        if state in DEPLOYMENT_STATE_VALUES
    )
    _fold(states, known_states, deployments, "max")
    _fold(loaded, ((m, int(flag)) for m, flag in snapshot.model_loaded.items()), models, "max")
    return result


class StateCollector:
    """Single-process mode: the state gauges, read through ``read`` at scrape time."""

    def __init__(self, read: Callable[[], StateValues]) -> None:
        self._read = read

    def describe(self) -> Iterator[Metric]:
        for spec in STATE_GAUGES:
            yield GaugeMetricFamily(spec.name, spec.documentation, labels=[spec.label])

    def collect(self) -> Iterator[Metric]:
        state = self._read()
        for spec in STATE_GAUGES:
            family = GaugeMetricFamily(spec.name, spec.documentation, labels=[spec.label])
            for label, value in state[spec.name].items():
                family.add_metric([label], value)
            yield family


def _fold(
    into: dict[str, float], items: Iterable[tuple[str, float]], labels: Mapping[str, str], how: Fold
) -> None:
    for key, value in items:
        label = labels.get(key, OTHER)
        if label != OTHER:
            into[label] = float(value)
        elif how == "sum":  # several unknown names share one series
            into[OTHER] = into.get(OTHER, 0.0) + value
        else:
            into[OTHER] = max(into.get(OTHER, value), value)
