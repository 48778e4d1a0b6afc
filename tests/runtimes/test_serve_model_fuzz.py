"""The structural model fuzzer against real `serve` processes (issue 26): mutated ONNX and
TFLite models (well-formed containers with changed fields) never take the server down, and
the session after each one, with the good model, gives the good model's output.
`make bench` (benchmarks/bench_model_fuzz.py) runs 2,000 models per runtime; here 150."""

from __future__ import annotations

import json

import pytest

from kenning_hil.formats.mutation import mutate_protobuf, mutate_tflite
from tests.model_fuzz import fuzz_server

MODELS = 150


def test_mutations_keep_the_container_well_formed(digits_onnx):
    import random

    from kenning_hil.formats import protobuf
    from kenning_hil.formats.mutation import _parse, _serialize

    data = digits_onnx.read_bytes()
    assert _serialize(_parse(data, 0)) == data  # the tree re-encodes the file exactly
    rng = random.Random(0)
    changed = 0
    for _ in range(200):
        mutated = mutate_protobuf(data, rng)
        list(protobuf.fields(mutated))  # every top-level length still adds up
        changed += mutated != data
    assert changed > 150  # a few draw a no-op (a value set to itself, equal fields swapped)


def test_mutated_onnx_models(tmp_path, digits_onnx):
    pytest.importorskip("onnxruntime")
    spec = json.loads(digits_onnx.with_name(digits_onnx.name + ".json").read_text())
    report = fuzz_server("onnxruntime", digits_onnx.read_bytes(), spec, mutate_protobuf,
                         MODELS, tmp_path, seed=26)
    print(report.line())
    assert report.models == MODELS and report.server_deaths == 0
    assert report.good_sessions_failed == []
    # the mutations reach past the first checks: some models load and run, some do not
    assert report.outcomes["ran"] > 0 and report.outcomes["model refused"] > 0


def test_mutated_tflite_models(tmp_path, digits_int8_tflite):
    pytest.importorskip("ai_edge_litert")
    spec = json.loads(digits_int8_tflite.with_name(digits_int8_tflite.name + ".json").read_text())
    report = fuzz_server("litert", digits_int8_tflite.read_bytes(), spec, mutate_tflite,
                         MODELS, tmp_path, seed=26)
    print(report.line())
    assert report.models == MODELS and report.server_deaths == 0
    assert report.good_sessions_failed == []
    assert report.outcomes["ran"] > 0 and report.outcomes["model refused"] > 0
