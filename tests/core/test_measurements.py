"""Tests of kenning_hil.core.measurements: the store, atomic JSON, the statistics thread,
the decorators and latency summaries."""

import dataclasses
import json
import os
import pickle
import threading
import time

import numpy as np
import psutil
import pytest

from kenning_hil.core.measurements import (
    LATENCY_SOURCES,
    PROTOCOL_STEP,
    TARGET_CYCLES,
    TARGET_INSTRUCTIONS,
    TARGET_STEP,
    Latency,
    LatencyStats,
    Measurements,
    MeasurementsCollector,
    SystemStatsCollector,
    _gpu_backend,
    _parse_nvidia_smi_csv,
    systemstatsmeasurements,
    tagmeasurements,
    timemeasurements,
    to_jsonable,
    write_json_atomic,
    write_text_atomic,
)


@pytest.fixture(autouse=True)
def clean_collector():
    MeasurementsCollector.clear()
    yield
    MeasurementsCollector.clear()


# Measurements


def test_accumulate_keeps_a_bare_value_as_kenning_does():
    m = Measurements()
    # Kenning's semantics: a bare value, not a one-element list
    assert m.accumulate("bytes", 5) == 5
    assert m.accumulate("bytes", 7) == 12 and m["bytes"] == 12


def test_accumulate_uses_init_function_once():
    m = Measurements()
    m.accumulate("matrix", np.array([1, 2]), lambda: np.zeros(2, dtype=np.int64))
    result = m.accumulate("matrix", np.array([10, 20]), lambda: np.full(2, 1000))
    np.testing.assert_array_equal(result, [11, 22])
    assert m.to_dict() == {"matrix": [11, 22]}  # a 1-D array stays 1-D in the file


def test_add_measurement_appends_and_honours_initial_value():
    m = Measurements()
    m.add_measurement("latency", 3)
    m.add_measurement("latency", 4)
    assert m.get_values("latency") == [3, 4]
    m.add_measurement("seeded", 2, lambda: [1])
    assert m["seeded"] == [1, 2]


def test_add_measurements_list_extends():
    m = Measurements()
    m.add_measurements_list("x", [1, 2])
    m.add_measurements_list("x", (3,))
    assert m["x"] == [1, 2, 3]


def test_initialize_measurement_sets_non_list_value():
    m = Measurements()
    m.initialize_measurement("eval_confusion_matrix", [[0, 0], [0, 0]])
    m.initialize_measurement("compiled_model_size", 1234)
    assert m["compiled_model_size"] == 1234
    assert m.get_values("eval_confusion_matrix") == [[0, 0], [0, 0]]


def test_get_values_of_missing_type_is_empty_list():
    assert Measurements().get_values("nothing") == []


def test_update_measurements_extends_lists_and_overwrites_other_values():
    m = Measurements({"lat": [1, 2], "size": 10, "name": "a"})
    m.update_measurements({"lat": [3], "size": 20, "new": [7, 8]})
    other = Measurements({"lat": [4, 5], "name": "b"})
    m.update_measurements(other)
    assert m["lat"] == [1, 2, 3, 4, 5]
    assert m["size"] == 20
    assert m["name"] == "b"
    assert m["new"] == [7, 8]
    # A list taken over from `other` is a copy: later changes to one don't leak to the other.
    other.add_measurement("lat", 6)
    m.add_measurement("new", 9)
    assert m["lat"] == [1, 2, 3, 4, 5]


def test_update_measurements_new_list_is_copied():
    source = {"series": [1]}
    m = Measurements()
    m.update_measurements(source)
    m.add_measurement("series", 2)
    assert source["series"] == [1]


def test_iadd_merges_like_update():
    m = Measurements({"a": [1]})
    m += {"a": [2]}
    assert m["a"] == [1, 2]


def test_dict_like_interface():
    m = Measurements()
    m["a"] = [1]
    m["b"] = 2
    assert "a" in m and "z" not in m
    assert len(m) == 2
    assert list(m) == ["a", "b"]
    assert list(m.keys()) == ["a", "b"]
    assert dict(m.items()) == {"a": [1], "b": 2}
    assert m.get("z", 5) == 5
    assert m == {"a": [1], "b": 2}
    del m["b"]
    assert len(m) == 1
    m.clear()
    assert len(m) == 0


def test_to_dict_converts_numpy_values_to_plain_json():
    m = Measurements()
    m.add_measurement("lat", np.int64(5))
    m.add_measurement("acc", np.float32(0.5))
    m.initialize_measurement("matrix", np.array([[1, 2], [3, 4]], dtype=np.int32))
    m.initialize_measurement("shape", (1, 2))
    m.initialize_measurement("flag", np.bool_(True))
    data = m.to_dict()
    assert data == {"lat": [5], "acc": [0.5], "matrix": [[1, 2], [3, 4]], "shape": [1, 2],
                    "flag": True}
    assert type(data["lat"][0]) is int
    assert type(data["acc"][0]) is float
    assert type(data["flag"]) is bool
    json.dumps(data)  # plain json, no custom encoder needed


def test_to_jsonable_rejects_unserialisable():
    with pytest.raises(TypeError):
        to_jsonable({"x": object()})


def test_measurements_pickle_round_trip_keeps_lock_usable():
    m = Measurements({"a": [1]})
    copy = pickle.loads(pickle.dumps(m))
    copy.add_measurement("a", 2)
    assert copy["a"] == [1, 2]
    assert m["a"] == [1]


def test_concurrent_accumulate_loses_no_update():
    m = Measurements()

    def work():
        for _ in range(2000):
            m.accumulate("count", 1)
            m.add_measurement("items", 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m["count"] == 8000
    assert len(m["items"]) == 8000


# Atomic JSON


def test_write_json_atomic_creates_parents_and_writes_numpy(tmp_path):
    target = tmp_path / "a" / "b" / "result.json"
    returned = write_json_atomic(target, {"x": np.arange(3), "y": np.float64(1.5)})
    assert returned == target
    assert json.loads(target.read_text()) == {"x": [0, 1, 2], "y": 1.5}
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]


def test_write_json_atomic_failure_leaves_original_and_no_temp(tmp_path):
    target = tmp_path / "result.json"
    write_json_atomic(target, {"good": 1})
    before = target.read_bytes()
    # Serialisation fails after the first keys are written: the temp file is half-written.
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": list(range(1000)), "b": object()})
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_write_json_atomic_keeps_key_order_and_honours_umask(tmp_path):
    target = tmp_path / "ordered.json"
    write_json_atomic(target, {"z": 1, "a": 2})
    assert list(json.loads(target.read_text())) == ["z", "a"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_collector_saves_collected_measurements(tmp_path):
    MeasurementsCollector.measurements.add_measurement("protocol_inference_step", np.int64(42))
    path = MeasurementsCollector.save_measurements(tmp_path / "out" / "m.json")
    # Kenning's unit in the file (seconds), our ns figure beside it
    assert json.loads(path.read_text()) == {"protocol_inference_step": [42e-9],
                                            "protocol_inference_step_ns": [42],
                                            "format_version": 2}
    MeasurementsCollector.clear()
    assert len(MeasurementsCollector.measurements) == 0


# System statistics


# stop() returns when the sampling thread has taken its last sample, not at the next step:
# with a 120 s step, stopping within 30 s tells the two apart and no machine load reaches it
# (an idle machine stops in about 1 ms)
LONG_STEP, STOPS_WITHIN = 120.0, 30.0


def test_system_stats_collector_samples_and_stops_promptly():
    collector = SystemStatsCollector("session_utilization", step=0.05)
    collector.start()
    time.sleep(0.3)
    start = time.perf_counter()
    collector.stop()
    stopped_in = time.perf_counter() - start
    assert stopped_in < STOPS_WITHIN
    assert not collector.is_alive()

    m = collector.get_measurements()
    stamps = m["session_utilization_timestamp"]
    assert len(stamps) >= 2
    assert stamps == sorted(stamps)
    assert len(m["session_utilization_cpus_percent"]) == len(stamps)
    assert len(m["session_utilization_mem_percent"]) == len(stamps)
    for sample in m["session_utilization_cpus_percent"]:
        assert len(sample) == psutil.cpu_count()
        assert all(0.0 <= p <= 100.0 for p in sample)
    assert all(0.0 < p <= 100.0 for p in m["session_utilization_mem_percent"])
    gpu_visible = _gpu_backend() != (None, None, [])
    assert ("session_utilization_gpu_utilization" in m) == gpu_visible
    assert ("session_utilization_gpu_mem_utilization" in m) == gpu_visible


def test_system_stats_collector_sees_busy_cpu():
    collector = SystemStatsCollector("busy", step=0.05)
    collector.start()
    end = time.perf_counter() + 0.25
    while time.perf_counter() < end:  # keep one core busy
        pass
    collector.stop()
    # Summed over cores, as the scheduler may move the busy thread between them.
    totals = [sum(sample) for sample in collector.get_measurements()["busy_cpus_percent"]]
    assert max(totals) >= 50.0


def test_system_stats_collector_stop_does_not_wait_for_step():
    collector = SystemStatsCollector("slow", step=LONG_STEP)
    collector.start()
    time.sleep(0.05)
    start = time.perf_counter()
    collector.stop()
    stopped_in = time.perf_counter() - start
    assert stopped_in < STOPS_WITHIN
    # The interval up to stop() is still recorded as one final sample.
    assert len(collector.get_measurements()["slow_timestamp"]) == 1


def test_system_stats_collector_rejects_bad_step():
    with pytest.raises(ValueError, match="step"):
        SystemStatsCollector("x", step=0)


def test_parse_nvidia_smi_csv():
    assert _parse_nvidia_smi_csv("23, 5\n0, 100\n") == [(23.0, 5.0), (0.0, 100.0)]
    assert _parse_nvidia_smi_csv("[N/A], [N/A]\n") is None
    assert _parse_nvidia_smi_csv("") is None


# Decorators


def test_timemeasurements_records_duration_and_start():
    @timemeasurements("target_inference_step")
    def slow(x, *, y):
        """Doc."""
        time.sleep(0.02)
        return x + y

    before = time.perf_counter_ns()
    assert slow(1, y=2) == 3
    assert slow(3, y=4) == 7
    after = time.perf_counter_ns()
    m = MeasurementsCollector.measurements
    durations = m["target_inference_step"]
    starts = m["target_inference_step_timestamp"]
    assert len(durations) == 2 and len(starts) == 2
    assert all(isinstance(d, int) and 20_000_000 <= d < after - before for d in durations)
    assert before <= starts[0] < starts[1] <= after
    assert starts[1] - starts[0] >= durations[0]
    assert slow.__name__ == "slow" and slow.__doc__ == "Doc."


def test_timemeasurements_skips_failed_calls():
    @timemeasurements("op")
    def failing():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing()
    assert "op" not in MeasurementsCollector.measurements


def test_tagmeasurements_records_named_interval():
    @tagmeasurements("inference")
    def work():
        time.sleep(0.01)
        return "done"

    assert work() == "done"
    assert work.__name__ == "work"
    (tag,) = MeasurementsCollector.measurements["tags"]
    assert set(tag) == {"name", "start", "end"}
    assert tag["name"] == "inference"
    assert tag["end"] - tag["start"] >= 10_000_000


def test_systemstatsmeasurements_merges_prefixed_samples():
    @systemstatsmeasurements("session_utilization", step=0.05)
    def work():
        time.sleep(0.25)
        return 11

    assert work() == 11
    assert work.__name__ == "work"
    m = MeasurementsCollector.measurements
    assert len(m["session_utilization_timestamp"]) >= 2
    assert len(m["session_utilization_cpus_percent"]) == len(m["session_utilization_timestamp"])
    # A second call adds its samples to the same series.
    count = len(m["session_utilization_timestamp"])
    work()
    assert len(m["session_utilization_timestamp"]) > count
    # No collector thread is left running.
    assert not [t for t in threading.enumerate() if t.name.startswith("SystemStatsCollector")]


# Latency summaries


def test_latency_stats_match_numpy():
    rng = np.random.default_rng(0)
    values = rng.integers(1_000_000, 50_000_000, size=101)
    stats = LatencyStats.from_ns(values.tolist())
    seconds = values / 1e9
    assert stats.count == 101
    assert stats.mean == pytest.approx(seconds.mean())
    assert stats.p50 == pytest.approx(np.percentile(seconds, 50))
    assert stats.p95 == pytest.approx(np.percentile(seconds, 95))
    assert stats.p99 == pytest.approx(np.percentile(seconds, 99))
    assert stats.min == pytest.approx(seconds.min())
    assert stats.max == pytest.approx(seconds.max())


def test_latency_stats_interpolate_linearly():
    stats = LatencyStats.from_ns([1e9, 2e9, 3e9, 4e9])
    assert stats.p50 == pytest.approx(2.5)
    assert stats.p95 == pytest.approx(3.85)
    assert stats.p99 == pytest.approx(3.97)
    assert stats.to_dict() == {"count": 4, "mean": 2.5, "p50": 2.5, "p95": stats.p95,
                               "p99": stats.p99, "min": 1.0, "max": 4.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.count = 5


def test_latency_stats_reject_empty_and_nan():
    with pytest.raises(ValueError, match="empty"):
        LatencyStats.from_ns([])
    with pytest.raises(ValueError, match="finite"):
        LatencyStats.from_ns([1.0, float("nan")])


def test_latency_comes_from_the_first_measured_source_in_its_unit():
    """Time on the target wins, then the target's counts, then the host-timed round trip;
    times arrive in ns and are kept in seconds, counts as counted."""
    steps, round_trips = [2_000_000, 4_000_000], [3_000_000, 5_000_000]
    both = Latency.from_measurements(Measurements({TARGET_STEP: steps, PROTOCOL_STEP: round_trips}))
    assert (both.source, both.unit, both.samples) == (TARGET_STEP, "s", (0.002, 0.004))
    assert both.metric_prefix == "latency" and both.p50 == pytest.approx(0.003)
    counted = Latency.from_measurements({TARGET_INSTRUCTIONS: [7_500, 7_700],
                                         TARGET_CYCLES: [1, 2], PROTOCOL_STEP: round_trips})
    assert (counted.source, counted.unit, counted.metric_prefix) == (
        TARGET_INSTRUCTIONS, "instructions", "instructions")
    assert counted.max == 7_700.0 and counted.to_dict()["unit"] == "instructions"
    timed_by_host = Latency.from_measurements({PROTOCOL_STEP: round_trips, TARGET_STEP: []})
    assert (timed_by_host.source, timed_by_host.count) == (PROTOCOL_STEP, 2)
    assert Latency.from_measurements({"accuracy": 0.9}) is None
    assert [source.key for source in LATENCY_SOURCES] == [
        TARGET_STEP, TARGET_INSTRUCTIONS, TARGET_CYCLES, PROTOCOL_STEP]


def test_write_text_atomic_replaces_whole_file_in_utf8(tmp_path):
    target = tmp_path / "a" / "report.md"
    write_text_atomic(target, "old")
    assert write_text_atomic(target, "µs – new\n") == target
    assert target.read_bytes() == "µs – new\n".encode()
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.md"]
