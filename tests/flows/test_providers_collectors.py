"""Data providers and output collectors in real flows with the digits model on ONNX Runtime:
image folders (PNG, a folder per class), EEMBC .bin files with y_labels.csv, .npy files, a TCP
stream over a real socket; JSON lines, the live summary and the drawn classification images."""

from __future__ import annotations

import io
import socket
import threading

import numpy as np
import pytest

from kenning_hil.core.errors import KenningHILError
from kenning_hil.dataproviders.tcp import frame
from kenning_hil.datasets.digits import DigitsDataset
from kenning_hil.flows.flowrun import build_flow, run_flow
from kenning_hil.outputcollectors.summary import LiveSummaryCollector
from tests.flows.conftest import DIGITS_MODEL, jsonl

pytest.importorskip("onnxruntime")

SAMPLES = 60


@pytest.fixture(scope="module")
def digits():
    """(pixels float32 [N, 64] in 0..1, labels) of the first test samples."""
    dataset = DigitsDataset(subset="test")
    dataset.set_sample_limit(SAMPLES)
    inputs, truth = dataset.get_data()
    return inputs[0], truth[0]


def model_runner(**inputs: str) -> dict:
    return {"type": "model-runtime-runner",
            "parameters": {"model_wrapper": DIGITS_MODEL, "runtime": {"type": "onnxruntime"}},
            "inputs": {"input": "pixels", **inputs}, "outputs": {"model_output": "scores"}}


def collectors(tmp_path, labelled: bool = True) -> list:
    label = {"label": "digit"} if labelled else {}
    return [{"type": "jsonlines", "parameters": {"path": str(tmp_path / "out.jsonl")},
             "inputs": {"model_output": "scores", **label}}]


def provider_outputs(labelled: bool = True) -> dict:
    return {"data": "pixels", **({"label": "digit"} if labelled else {})}


def check_lines(tmp_path, labels, count: int = SAMPLES) -> list[dict]:
    lines = jsonl(tmp_path / "out.jsonl")
    assert [line["sample"] for line in lines] == list(range(count))
    assert [line["label"] for line in lines] == [int(v) for v in labels[:count]]
    assert sum(line["class"] == line["label"] for line in lines) / count >= 0.9
    return lines


def test_png_folders_per_class_with_drawn_results(tmp_path, harness, targets, digits):
    from PIL import Image

    pixels, labels = digits
    for i, (row, label) in enumerate(zip(pixels, labels)):
        folder = tmp_path / "images" / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(row.reshape(8, 8) * 255).astype(np.uint8)).save(
            folder / f"{i:03d}.png")
    flow = [
        {"type": "files-provider",
         "parameters": {"path": str(tmp_path / "images"), "scale": 1 / 255, "shape": [64],
                        "labels": "parent"},
         "outputs": provider_outputs()},
        model_runner(),
        *collectors(tmp_path),
        {"type": "classification-images",
         "parameters": {"directory": str(tmp_path / "drawn"), "limit": 5, "size": 96},
         "inputs": {"model_output": "scores", "input": "pixels", "label": "digit"}},
    ]
    result = run_flow(flow, harness, targets, name="png")
    assert result.steps == SAMPLES and result.accuracy >= 0.9
    lines = jsonl(tmp_path / "out.jsonl")
    assert len(lines) == SAMPLES
    order = sorted(range(SAMPLES), key=lambda i: (str(int(labels[i])), f"{i:03d}"))
    assert [line["label"] for line in lines] == [int(labels[i]) for i in order]
    drawn = sorted((tmp_path / "drawn").iterdir())
    assert len(drawn) == 5
    with Image.open(drawn[0]) as image:
        assert image.size == (96, 96) and image.mode == "RGB"
    # the name says the predicted class of that sample
    assert drawn[0].stem == f"000000-{lines[0]['class']}"


def test_eembc_bin_files_and_npy_files(tmp_path, harness, targets, digits):
    pixels, labels = digits
    bins = tmp_path / "eembc"
    bins.mkdir()
    rows = []
    for i, row in enumerate(pixels):
        row.astype(np.float32).tofile(bins / f"s{i:03d}.bin")
        rows.append(f"s{i:03d}.bin,10,{int(labels[i])}")
    (bins / "y_labels.csv").write_text("\n".join(rows) + "\n")
    flow = [{"type": "files-provider",
             "parameters": {"path": str(bins), "shape": [64], "labels": "eembc"},
             "outputs": provider_outputs()},
            model_runner(), *collectors(tmp_path)]
    run_flow(flow, harness, targets, name="eembc")
    check_lines(tmp_path, labels)

    npys = tmp_path / "npy"
    npys.mkdir()
    for i, row in enumerate(pixels[:10]):
        np.save(npys / f"{i:02d}.npy", row)
    flow[0] = {"type": "files-provider", "parameters": {"path": str(npys)},
               "outputs": provider_outputs(labelled=False)}
    flow[2] = collectors(tmp_path, labelled=False)[0]
    flow[2]["parameters"]["write_outputs"] = True
    result = run_flow(flow, harness, targets, name="npy")
    lines = jsonl(tmp_path / "out.jsonl")
    assert len(lines) == 10 and "label" not in lines[0] and "accuracy" not in result.metrics
    assert np.argmax(lines[0]["outputs"][0]) == lines[0]["class"]


def test_bin_file_of_the_wrong_size_is_named(tmp_path, harness, targets):
    (tmp_path / "bad.bin").write_bytes(b"\0" * 10)
    flow = [{"type": "files-provider", "parameters": {"path": str(tmp_path / "bad.bin"),
                                                      "shape": [64]},
             "outputs": provider_outputs(labelled=False)},
            model_runner(), *collectors(tmp_path, labelled=False)]
    with pytest.raises(KenningHILError, match=r"flow runner 0 \(files-provider\): field "
                       r"'parameters': cannot read .*bad\.bin: .*10 bytes, a 64 float32 "
                       r"sample has 256"):
        build_flow(flow, harness, targets)


def send_frames(server_port: int, frames: list[bytes]) -> threading.Thread:
    def send():
        with socket.create_connection(("127.0.0.1", server_port), timeout=30) as sock:
            for data in frames:
                sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    return thread


def tcp_flow(tmp_path) -> list:
    return [{"type": "tcp-provider",
             "parameters": {"port": 0, "listen": True, "shape": [64], "labelled": True},
             "outputs": provider_outputs()},
            model_runner(), *collectors(tmp_path),
            {"type": "summary", "parameters": {"interval": 0},
             "inputs": {"model_output": "scores", "label": "digit"}}]


def test_tcp_stream_of_labelled_frames(tmp_path, harness, targets, digits):
    pixels, labels = digits
    flow = build_flow(tcp_flow(tmp_path), harness, targets)
    provider, summary = flow.runners[0], flow.runners[3]
    summary.stream = io.StringIO()
    sender = send_frames(provider.port, [frame(p, int(lab)) for p, lab in zip(pixels, labels)])
    sender.start()
    measurements = flow.run()
    sender.join(10)
    check_lines(tmp_path, labels)
    assert measurements["flow_steps"] == SAMPLES and provider.frames == SAMPLES
    assert measurements["accuracy"] >= 0.9
    # the live line: rewritten in place, ended by the cleanup with the final counts
    shown = summary.stream.getvalue()
    assert shown.count("\r") == SAMPLES + 1 and shown.endswith("\n")
    assert f"flow: {SAMPLES} samples" in shown.rsplit("\r", 1)[1]
    assert "accuracy" in summary.last_line and "last class" in summary.last_line


def test_tcp_stream_cut_inside_a_frame_fails_naming_it(tmp_path, harness, targets, digits):
    pixels, labels = digits
    flow = build_flow(tcp_flow(tmp_path), harness, targets)
    flow.runners[3].stream = io.StringIO()
    frames = [frame(p, int(lab)) for p, lab in zip(pixels[:3], labels[:3])]
    sender = send_frames(flow.runners[0].port, [*frames, frames[0][:100]])
    sender.start()
    with pytest.raises(KenningHILError, match=r"frame 3 cut after 96 of 260 bytes") as caught:
        flow.run()
    # the three whole samples were processed and measured
    assert caught.value.measurements["flow_steps"] == 3
    assert len(jsonl(tmp_path / "out.jsonl")) == 3


def test_live_summary_line():
    stream = io.StringIO()
    summary = LiveSummaryCollector(interval=0, stream=stream)
    summary.prepare()
    for label, scores in ((1, [0, 1, 0]), (2, [0, 1, 0])):
        summary.run({"model_output": [np.array([scores], np.float32)],
                     "label": np.array([label])})
    summary.cleanup()
    assert summary.last_line.startswith("flow: 2 samples, ")
    assert summary.last_line.endswith("/s, last class 1, accuracy 0.5000 (1/2)")


def test_a_failed_step_keeps_what_was_measured(tmp_path, harness, targets, digits):
    """run_flow writes the results of the steps done before a failure, with the error."""
    import json

    pixels, labels = digits
    server = socket.create_server(("127.0.0.1", 0))
    frames = [frame(p, int(lab)) for p, lab in zip(pixels[:4], labels[:4])]

    def serve():
        connection, _ = server.accept()
        with connection:
            connection.sendall(b"".join(frames) + frames[0][:10])

    sender = threading.Thread(target=serve, daemon=True)
    sender.start()
    flow = tcp_flow(tmp_path)
    flow[0]["parameters"] = {"port": server.getsockname()[1], "shape": [64], "labelled": True}
    flow.pop()  # no live line in the test's output
    try:
        with pytest.raises(KenningHILError, match="frame 4 cut after 6 of 260 bytes") as caught:
            run_flow(flow, harness, targets, name="cut")
    finally:
        server.close()
    saved = json.loads(caught.value.result.path.read_text())
    assert saved["samples"] == 4 and saved["flow"]["steps"] == 4
    assert "frame 4 cut" in saved["error"] and saved["flow"]["error"] == saved["error"]
    assert len(saved["measurements"]["target_inference_step"]) == 4
    assert len(jsonl(tmp_path / "out.jsonl")) == 4


def test_dataset_provider_samples_and_class_ids(digits):
    """The dataset provider's samples, as `fetch_input` (the seed's Sample) and as a flow
    step's outputs: batches of one in dataset order, class ids as ints; `loop` starts again."""
    from kenning_hil.core.dataprovider import Sample
    from kenning_hil.dataproviders.dataset import DatasetProvider

    pixels, labels = digits
    entry = {"type": "digits", "parameters": {"subset": "test"}}
    provider = DatasetProvider(outputs={"data": "x", "label": "y"}, dataset=entry, samples=3)
    provider.prepare()
    first = provider.fetch_input()
    assert type(first) is Sample and type(first.label) is int and first.label == labels[0]
    np.testing.assert_array_equal(first.data[0], pixels[:1])
    step = provider.run({})
    assert step["label"] == int(labels[1]) and step["data"][0].shape == (1, 64)
    provider.run({})
    with pytest.raises(StopIteration):
        provider.run({})
    looping = DatasetProvider(dataset=entry, samples=2, loop=True)
    looping.prepare()
    looped = [looping.run({})["label"] for _ in range(5)]
    assert looped == [int(labels[i]) for i in (0, 1, 0, 1, 0)]
