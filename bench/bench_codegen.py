"""Generated helpers cost what a hand-written OTel call costs; generating the full semconv model is quick.

`helper_span_ratio` / `helper_metric_ratio`: the same telemetry through `knhk_otel.semconv` helpers
and through the raw OpenTelemetry API, same SDK providers (no-op span processor, in-memory metric
reader), strict mode off, interleaved repetitions; each side's best repetition is compared.
`generate_semconv_s`: `knhk-otel generate python` for the OpenTelemetry semconv v1.44 model
(load, resolve, render, write), baseline load + resolve alone in the same run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind
from run import Figure, at_most, figure, reference, value_below  # type: ignore[import-not-found]

from knhk_otel.codegen import discover, generate_target
from knhk_otel.harness.reference import SEMCONV_MODEL
from knhk_otel.runtime import strict
from knhk_otel.schema import load_and_resolve
from knhk_otel.semconv import attributes, metrics, spans

SPAN_ITERATIONS = 4_000
METRIC_ITERATIONS = 20_000
REPETITIONS = 9
GENERATE_ROUNDS = 3


def _best_pair(raw: Callable[[int], None], helper: Callable[[int], None], n: int) -> tuple[float, float]:
    """Per-call seconds of each side: interleaved repetitions, best of each (least disturbed by noise)."""
    raw(n // 10)
    helper(n // 10)  # warm up caches and the SDK's instrument/attribute storage
    raw_times: list[float] = []
    helper_times: list[float] = []
    for rep in range(REPETITIONS):
        order = (raw, helper) if rep % 2 == 0 else (helper, raw)
        for work in order:
            started = time.perf_counter()
            work(n)
            elapsed = (time.perf_counter() - started) / n
            (raw_times if work is raw else helper_times).append(elapsed)
    return min(raw_times), min(helper_times)


def _span_pair() -> tuple[float, float]:
    provider = TracerProvider()
    provider.add_span_processor(SpanProcessor())  # the base class does nothing: spans are built, then dropped
    tracer = provider.get_tracer("bench")
    phase, topology = attributes.GossipPhase.PUSH, attributes.Topology.MULTI_REGION

    def raw(n: int) -> None:
        for i in range(n):
            with tracer.start_as_current_span(
                "knhk.mesh.gossip.round",
                kind=SpanKind.INTERNAL,
                attributes={
                    "knhk.mesh.node.id": "a1b2c3d4",
                    "knhk.mesh.gossip.round": i,
                    "knhk.mesh.gossip.phase": "push",
                    "knhk.mesh.topology": "multi_region",
                },
            ):
                pass

    def helper(n: int) -> None:
        for i in range(n):
            with spans.start_gossip_round(
                tracer, node_id="a1b2c3d4", gossip_round=i, gossip_phase=phase, topology=topology
            ):
                pass

    try:
        return _best_pair(raw, helper, SPAN_ITERATIONS)
    finally:
        provider.shutdown()


def _metric_pair() -> tuple[float, float]:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    raw_meter, helper_meter = provider.get_meter("raw"), provider.get_meter("helper")
    counter = raw_meter.create_counter("knhk.mesh.messages", unit="{message}")
    histogram = raw_meter.create_histogram(
        "knhk.mesh.tick.usage", unit="{tick}", explicit_bucket_boundaries_advisory=[1, 2, 4, 8, 16, 32, 64]
    )
    messages = metrics.Messages(helper_meter)
    usage = metrics.TickUsage(helper_meter)
    sent, push = attributes.MessageDirection.SENT, attributes.MessageType.PUSH
    merge = attributes.TickOperation.MERGE

    def raw(n: int) -> None:
        for i in range(n):
            counter.add(
                1,
                {
                    "knhk.mesh.message.direction": "sent",
                    "knhk.mesh.message.type": "push",
                },
            )
            histogram.record(i & 7, {"knhk.mesh.tick.operation": "merge"})

    def helper(n: int) -> None:
        for i in range(n):
            messages.add(1, message_direction=sent, message_type=push)
            usage.record(i & 7, tick_operation=merge)

    try:
        return _best_pair(raw, helper, METRIC_ITERATIONS)
    finally:
        provider.shutdown()


def _generate_times(model: Path) -> tuple[float, float]:
    target = discover()["python"]
    load_times: list[float] = []
    gen_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(GENERATE_ROUNDS):
            started = time.perf_counter()
            registry, _ = load_and_resolve(model)
            load_times.append(time.perf_counter() - started)
            assert registry is not None
            started = time.perf_counter()
            registry, _ = load_and_resolve(model)
            assert registry is not None
            generate_target(target, registry, model, Path(tmp) / f"out{i}", registry_display="model")
            gen_times.append(time.perf_counter() - started)
    return statistics.median(gen_times), statistics.median(load_times)


def run() -> dict[str, Figure]:
    previous = strict.is_strict()
    strict.set_strict(False)
    try:
        span_raw, span_helper = _span_pair()
        metric_raw, metric_helper = _metric_pair()
    finally:
        strict.set_strict(previous)
    out = {
        "helper_span_ratio": figure(
            span_helper * 1e6,
            "us/span",
            span_raw * 1e6,
            goal=at_most(1.05),
            note=f"start_gossip_round vs tracer.start_as_current_span, 4 attributes; best of {REPETITIONS} "
            f"interleaved x {SPAN_ITERATIONS}",
        ),
        "helper_metric_ratio": figure(
            metric_helper * 1e6,
            "us/iter",
            metric_raw * 1e6,
            goal=at_most(1.05),
            note=f"Messages.add + TickUsage.record vs counter.add + histogram.record; best of {REPETITIONS} "
            f"interleaved x {METRIC_ITERATIONS}",
        ),
    }
    model = reference(SEMCONV_MODEL, "generate_semconv_s")
    if model is not None:
        generated, loaded = _generate_times(model)
        out["generate_semconv_s"] = figure(
            generated,
            "s",
            loaded,
            goal=value_below(3, "s"),
            note=f"load + resolve + render + write of the python target; baseline load + resolve; median of "
            f"{GENERATE_ROUNDS}",
        )
    return out
