import json

import numpy as np
import pytest
import torch

from xapp.cli import main
from xapp.data import TaskData, generate
from xapp.data.io import save_npz
from xapp.model import Encoder, EncoderConfig, load_encoder, save_encoder
from xapp.model.safefile import sha256_file
from xapp.config.manifest import read_manifest
from xapp.train.head_training import TrainSettings, train_all

SMALL = EncoderConfig(dim=64, depth=4, heads=4)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A tiny encoder and its heads for los and modulation, as `xapp heads train --side auto` ships them."""
    root = tmp_path_factory.mktemp("shipped")
    torch.manual_seed(0)
    encoder_path = root / "encoder.safetensors"
    save_encoder(encoder_path, Encoder(SMALL))
    manifest = train_all(load_encoder(encoder_path), {"file": str(encoder_path), "sha256": sha256_file(encoder_path)},
                         ["los", "modulation"], TrainSettings(train=64, val=32, test=32, epochs=2, chunk=32, side="auto"), root / "heads",
                         "test", progress=False, log=lambda s: None)
    return encoder_path, manifest


def xapp_eval(shipped, task, data, *extra):
    encoder_path, manifest = shipped
    return main(["eval", "--task", task, "--data", str(data), "--manifest", str(manifest),
                 "--checkpoint", str(encoder_path), *extra])


@pytest.mark.parametrize("task", ["los", "modulation"])  # modulation's heads may read side features
def test_eval_scores_every_exit_of_the_shipped_heads(shipped, tmp_path, capsys, task):
    _, manifest_path = shipped
    manifest = read_manifest(manifest_path)
    test = manifest["tasks"][task]["splits"]["test"]
    path = tmp_path / "operator.npz"
    save_npz(path, generate(task, test["n"], test["seed"]))  # the test split, so accuracies must match the manifest
    assert xapp_eval(shipped, task, path, "--json") == 0
    rows = json.loads(capsys.readouterr().out)["exits"]
    shipped_heads = [h for h in manifest["heads"] if h["task"] == task]
    assert [r["exit"] for r in rows] == [1, 2, 3, 4]
    for row, head in zip(rows, shipped_heads):
        assert row["n"] == test["n"]
        assert row["gflops"] == pytest.approx(head["gflops"])
        assert abs(row["accuracy"] - head["test_accuracy"]) <= 1 / test["n"] + 1e-9  # float rounding may flip one frame
        assert 0 <= row["calibration_error"] <= 1
        coverage = [b["coverage"] for b in row["by_confidence"]]
        assert [b["min_confidence"] for b in row["by_confidence"]] == [0.5, 0.7, 0.8, 0.9, 0.95]
        assert coverage == sorted(coverage, reverse=True) and coverage[0] <= 1
    last = shipped_heads[-1]  # the full depth's trunk, and the last head with whatever side features it reads
    assert rows[-1]["percent_of_full"] == pytest.approx(100 * last["gflops"] / last["encoder_gflops"])
    assert xapp_eval(shipped, task, path) == 0
    table = capsys.readouterr().out
    assert f"{task} heads on" in table and "conf >= 0.8" in table and len(table.strip().splitlines()) == 6


def test_eval_maps_class_names_whatever_their_order_in_the_file(shipped, tmp_path, capsys):
    data = generate("los", 24, 5)
    flipped = TaskData("los", data.x, 1 - data.y, ("NLOS", "LOS"), data.snr_db, {})
    for name, d in (("a.npz", data), ("b.npz", flipped)):
        save_npz(tmp_path / name, d)
        assert xapp_eval(shipped, "los", tmp_path / name, "--json") == 0
    first, second = _json_parts(capsys.readouterr().out)
    assert [r["accuracy"] for r in first["exits"]] == [r["accuracy"] for r in second["exits"]]


def test_eval_reads_class_names_as_other_tools_spell_them(shipped, tmp_path, capsys):
    data = generate("modulation", 33, 6)
    theirs = {"QAM16": "16qam", "QAM64": "qam-64", "8PSK": "8psk", "AM-DSB": "am_dsb", "AM-SSB": "AM SSB"}
    respelled = TaskData("modulation", data.x, data.y, tuple(theirs.get(c, c.lower()) for c in data.classes), data.snr_db, {})
    for name, d in (("ours.npz", data), ("theirs.npz", respelled)):
        save_npz(tmp_path / name, d)
        assert xapp_eval(shipped, "modulation", tmp_path / name, "--json") == 0
    first, second = _json_parts(capsys.readouterr().out)
    assert first["exits"] == second["exits"]
    twice = TaskData("modulation", data.x, data.y, ("16qam", *data.classes[1:-1], "QAM-16"), data.snr_db, {})
    save_npz(tmp_path / "twice.npz", twice)
    assert xapp_eval(shipped, "modulation", tmp_path / "twice.npz") == 2
    assert "name one class of task 'modulation' twice" in capsys.readouterr().err


def _json_parts(out):
    decoder, parts, i = json.JSONDecoder(), [], 0
    while i < len(out):
        obj, i = decoder.raw_decode(out, i)
        parts.append(obj)
        while i < len(out) and out[i].isspace():
            i += 1
    return parts


def test_eval_reads_a_labelled_sigmf_recording(shipped, tmp_path, capsys):
    import sigmf
    from sigmf import SigMFFile

    data = generate("modulation", 6, 9, classes=["BPSK", "QPSK"])
    iq = data.x[:, 0, :].reshape(-1)
    data_file = tmp_path / "rec.sigmf-data"
    iq.astype(np.complex64).tofile(data_file)
    meta = SigMFFile(data_file=str(data_file), global_info={sigmf.DATATYPE_KEY: "cf32_le", sigmf.VERSION_KEY: "1.0.0"})
    for i, label in enumerate(data.y):
        meta.add_annotation(i * 1024, 1024, metadata={sigmf.LABEL_KEY: data.classes[label]})
    meta.tofile(str(tmp_path / "rec.sigmf-meta"))
    assert xapp_eval(shipped, "modulation", tmp_path / "rec.sigmf-meta", "--json") == 0
    rows = json.loads(capsys.readouterr().out)["exits"]
    assert [r["n"] for r in rows] == [6] * 4


def test_eval_decides_a_longer_capture_over_its_windows(shipped, tmp_path, capsys):
    """A capture twice the heads' length is cut into two windows in time order and decided once, from
    the mean of the head's log-probabilities over them, at twice the cost."""
    from xapp.config.manifest import task_heads
    from xapp.model import load_head
    from xapp.train.calibration import exit_logits
    from xapp.model.patch import capture_windows

    encoder_path, manifest_path = shipped
    data = generate("modulation", 24, 3, samples=2048)
    path = tmp_path / "captures.npz"
    save_npz(path, data)
    assert xapp_eval(shipped, "modulation", path, "--json") == 0
    rows = json.loads(capsys.readouterr().out)["exits"]
    windows = capture_windows(data.x, 2)
    np.testing.assert_array_equal(windows[1::2], data.x[:, :, 1024:])
    np.testing.assert_array_equal(windows[::2], data.x[:, :, :1024])
    shipped_heads = task_heads(read_manifest(manifest_path), "modulation", manifest_path)
    heads = {h["exit"]: load_head(h["path"], h["sha256"])[0] for h in shipped_heads}
    with torch.inference_mode():
        logits = exit_logits(load_encoder(encoder_path), heads, windows)
    for row, h in zip(rows, shipped_heads):
        fused = logits[h["exit"]].log_softmax(-1).reshape(24, 2, -1).mean(1).softmax(-1)
        assert row["windows"] == 2 and row["n"] == 24
        assert row["gflops"] == pytest.approx(2 * h["gflops"])
        assert row["accuracy"] == pytest.approx(float((fused.argmax(-1).numpy() == data.y).mean()))
    assert xapp_eval(shipped, "modulation", path) == 0
    assert "(24 frames, each decided over 2 windows" in capsys.readouterr().out


@pytest.mark.parametrize("case,message", [
    ("unknown_class", "class names ['blocked'] are not classes of task 'los'"),
    ("wrong_shape", "frames are [1, 1024] (antennas, samples); the los heads read [16, 64], or captures"),
    ("wrong_length", "frames are [16, 96] (antennas, samples); the los heads read [16, 64], or captures a whole "
                     "number of times as long ([16, 128], [16, 192], ...)"),
    ("unknown_task", "unknown task 'radar'"),
    ("text_file", "unsupported file type"),
    ("missing", "no such file"),
])
def test_eval_errors_name_what_and_where(shipped, tmp_path, capsys, case, message):
    data = generate("los", 8, 1)
    path = tmp_path / "bad.npz"
    task = "los"
    if case == "unknown_class":
        save_npz(path, TaskData("los", data.x, data.y, ("LOS", "blocked"), data.snr_db, {}))
    elif case == "wrong_shape":
        mod = generate("modulation", 8, 1)
        save_npz(path, TaskData("los", mod.x, data.y, data.classes, data.snr_db, {}))
    elif case == "wrong_length":
        save_npz(path, generate("los", 8, 1, samples=96))
    elif case == "unknown_task":
        save_npz(path, data)
        task = "radar"
    elif case == "text_file":
        path = tmp_path / "bad.txt"
        path.write_text("1,2,3\n")
    assert xapp_eval(shipped, task, path) == 2
    err = capsys.readouterr().err
    assert err.startswith("xapp eval: error: ") and message in err
    if case != "unknown_task":
        assert str(path) in err

# `xapp report` reads the same shipped heads.
def test_report_is_built_from_the_manifest_and_engine_runs(shipped, tmp_path):
    encoder_path, manifest_path = shipped
    out = tmp_path / "docs"
    assert main(["report", "--manifest", str(manifest_path), "--checkpoint", str(encoder_path), "--out", str(out),
                 "--frames", "16", "--batch", "8"]) == 0
    for name in ("results.md", "results.json", "exits.png", "dynamic.png", "snr_modulation.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    manifest = read_manifest(manifest_path)
    for h in manifest["heads"]:
        row = next(e for e in results["tasks"][h["task"]]["exits"] if e["exit"] == h["exit"])
        assert row["test_accuracy"] == h["test_accuracy"] and row["gflops"] == h["gflops"]
    modulation = results["tasks"]["modulation"]["dynamic"]
    assert [r["setting"] for r in modulation["fixed"]] == [1, 2, 3, 4]
    assert all(r["frames"] == 16 and sum(r["exit_counts"]) == 16 for runs in modulation.values() for r in runs)
    assert [b["task"] for b in results["claims"]["b"]] == ["los"]
    unseen, = results["claims"]["b"]
    assert unseen["best_train_frames"] == unseen["last_train_frames"] == manifest["settings"]["train"]
    text = (out / "results.md").read_text()
    sides = {e["side"] for e in results["tasks"]["modulation"]["exits"]}
    assert sides <= {None, "lines", "hand"} and {e["side"] for e in results["tasks"]["los"]["exits"]} <= {None, "spatial"}
    for e, h in zip(results["tasks"]["los"]["exits"], (h for h in manifest["heads"] if h["task"] == "los")):
        alone = [c for name, c in h.get("by_pooling", {}).items() if "+" not in name]
        best_alone = max(alone, key=lambda c: c["val_accuracy"], default={}).get("test_accuracy")
        assert e["trunk_only_test_accuracy"] == (e["test_accuracy"] if e["side"] is None else best_alone)
    for heading in ("### (a)", "### (b)", "### (c)", "## Dynamic exiting vs fixed exits", "![dynamic.png](dynamic.png)",
                    "| exit | GFLOPs/frame | head reads |"):
        assert heading in text
    assert "`test`" in text  # the manifest's command


def test_report_refuses_an_encoder_the_heads_were_not_trained_on(shipped, tmp_path, capsys):
    _, manifest_path = shipped
    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    save_encoder(other, Encoder(SMALL))
    assert main(["report", "--manifest", str(manifest_path), "--checkpoint", str(other), "--out", str(tmp_path)]) == 2
    assert "the heads in this manifest were trained on that encoder" in capsys.readouterr().err
