"""`encoder.runtime` / `encoder.precision: auto` (xapp.engine.choose): which settings are candidates
here, which one the measurements choose, and the cache that makes a restart serve the same way at once."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import write_descriptor

from xapp.config import load_descriptor
from xapp.engine.build import build_table
from xapp.engine import choose as choose_module
from xapp.engine.choose import (CACHE_FILE, REFERENCE, Setting, agreement_bound, candidates, choose, compare,
                                resolve, sample_requests)
from xapp.engine.precision import cpu_has_bf16
from xapp.model import load_encoder
from xapp.vocab import NodeEndpoint

CPU = torch.device("cpu")


def test_candidates_are_what_the_values_allow_on_this_device():
    assert candidates("torch", "int8", CPU) == [Setting("torch", "int8")]
    assert candidates("onnxruntime", "bf16", CPU) == [Setting("onnxruntime", "bf16")]  # the engine says why not
    everything = candidates("auto", "auto", CPU)
    assert everything[0] == REFERENCE
    assert {Setting("torch", "int8"), Setting("onnxruntime", "fp32"), Setting("onnxruntime", "int8")} <= set(everything)
    assert (Setting("torch", "bf16") in everything) == cpu_has_bf16()
    assert Setting("onnxruntime", "bf16") not in everything
    assert candidates("onnxruntime", "auto", CPU) == [Setting("onnxruntime", "fp32"), Setting("onnxruntime", "int8")]
    assert candidates("auto", "fp32", CPU) == [REFERENCE, Setting("onnxruntime", "fp32")]
    assert candidates("auto", "auto", torch.device("cuda")) == [REFERENCE]  # CUDA autocasts to bf16 anyway


def result(frames: int, **variants: tuple[float, float]) -> dict:
    return {"frames": frames, "variants": {name.replace("_", " "): {"frames_per_s": fps, "agreement_with_fp32": agree}
                                           for name, (fps, agree) in variants.items()}}


def test_choose_takes_the_fastest_setting_sure_to_agree_enough():
    measured = result(1152, torch_fp32=(100, 1.0), torch_int8=(190, 0.976), torch_bf16=(170, 0.9983),
                      onnxruntime_fp32=(150, 1.0), onnxruntime_int8=(200, 0.9922))
    assert choose(measured, 0.99) == Setting("torch", "bf16")  # int8's 99.22 % of 1,152 bounds it at 98.66 %
    assert choose(measured, 0.98) == Setting("onnxruntime", "int8")
    assert choose(measured, 0.996) == Setting("onnxruntime", "fp32")
    assert choose(measured, 0.99, [Setting("torch", "int8"), Setting("onnxruntime", "fp32")]) == Setting("onnxruntime", "fp32")
    assert choose(measured, 0.99, [Setting("torch", "int8")]) == REFERENCE  # nothing allowed agrees: fp32 serves
    many = result(100_000, torch_fp32=(100, 1.0), onnxruntime_int8=(200, 0.9922))
    assert choose(many, 0.99) == Setting("onnxruntime", "int8")  # the same agreement, measured on more frames
    assert agreement_bound(0.9922, 1152) == pytest.approx(0.98663, abs=1e-5)
    assert agreement_bound(1.0, 1152) == pytest.approx(1 / (1 + 1.645**2 / 1152))


@pytest.fixture
def plan(tiny_model, tmp_path):
    """A descriptor for the tiny model with `encoder` settings, its encoder and task table."""
    model_dir, _ = tiny_model

    def make(name: str = "xapp.yaml", max_batch: int = 16, **encoder):
        path = write_descriptor(model_dir, tmp_path / name, [NodeEndpoint("n0", "127.0.0.1:1")], "tcp://127.0.0.1:1",
                                "redis://127.0.0.1:1/0", 1)
        doc = yaml.safe_load(path.read_text())
        doc["encoder"] |= encoder
        doc["batching"]["max_batch"] = max_batch
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        descriptor = load_descriptor(path)
        model = load_encoder(descriptor.encoder.checkpoint, "cpu")
        return descriptor, model, build_table(descriptor, model)

    return make


def test_auto_measures_once_then_reads_the_cache_until_the_plan_changes(plan, tmp_path):
    cache = tmp_path / "cache"
    descriptor, model, table = plan(runtime="auto", precision="auto")
    first = resolve(descriptor, model, table, cache)
    assert first.how == "measured"
    measured = first.measured["variants"]
    assert set(measured) == {str(s) for s in candidates("auto", "auto", CPU)}
    frames = first.measured["frames"]
    agreeing = {name: v["frames_per_s"] for name, v in measured.items()
                if agreement_bound(v["agreement_with_fp32"], frames) >= 0.99}
    assert str(first.setting) == max(agreeing, key=agreeing.get)
    assert measured["onnxruntime fp32"]["agreement_with_fp32"] == 1.0
    again = resolve(descriptor, model, table, cache)
    assert (again.how, again.setting) == ("cached", first.setting)
    assert len(json.loads((cache / CACHE_FILE).read_text())) == 1
    other = plan("other.yaml", max_batch=8, runtime="auto", precision="auto")  # another batch size: measured anew
    assert resolve(*other, cache).how == "measured"
    assert len(json.loads((cache / CACHE_FILE).read_text())) == 2


def test_a_change_to_the_code_that_computes_the_trunk_is_measured_anew(plan, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    descriptor, model, table = plan(runtime="auto", precision="fp32")
    assert resolve(descriptor, model, table, cache).how == "measured"
    assert resolve(descriptor, model, table, cache).how == "cached"
    monkeypatch.setattr(choose_module, "kernel_code_digest", lambda: "another revision of the blocks")
    assert resolve(descriptor, model, table, cache).how == "measured"


def test_fixed_settings_are_not_measured_and_a_broken_cache_costs_only_a_measurement(plan, tmp_path):
    descriptor, model, table = plan(runtime="onnxruntime", precision="int8")
    fixed = resolve(descriptor, model, table, tmp_path / "unused")
    assert (fixed.how, fixed.setting, fixed.measured) == ("configured", Setting("onnxruntime", "int8"), None)
    assert not (tmp_path / "unused").exists()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / CACHE_FILE).write_text("{not json")
    descriptor, model, table = plan(runtime="auto", precision="fp32")
    chosen = resolve(descriptor, model, table, cache)
    assert chosen.how == "measured" and chosen.setting.precision == "fp32"
    assert resolve(descriptor, model, table, cache).how == "cached"  # the broken file was replaced
    entries = json.loads((cache / CACHE_FILE).read_text())
    (cache / CACHE_FILE).write_text(json.dumps({key: {"runtime": "tensorrt"} for key in entries}))
    assert resolve(descriptor, model, table, cache).how == "measured"  # an entry that names no candidate


def test_sample_requests_take_the_first_frames_of_a_named_split():
    """`xapp bench --precision --test-split`: the first n frames of the split the heads were scored on."""
    from xapp.data import generate

    requests = sample_requests(["beam", "modulation"], 5, splits={"beam": (12, 7002)})
    split = generate("beam", 12, 7002)
    beams = [r for r in requests if r.task == "beam"]
    assert [r.seq for r in beams] == list(range(5))
    for r in beams:
        assert np.array_equal(r.frame, split.x[r.seq]) and r.label == split.classes[int(split.y[r.seq])]
    own = generate("modulation", 5, 1234 + 1)  # the task's own seed: the bench's, plus its position
    assert all(np.array_equal(r.frame, own.x[r.seq]) for r in requests if r.task == "modulation")


def test_a_setting_that_cannot_run_here_is_left_out_not_fatal(plan):
    descriptor, model, table = plan()
    frames = sample_requests(list(table), 8)
    result = compare(model, table, frames, 8, [Setting("onnxruntime", "bf16"), Setting("torch", "int8")], repeats=1)
    assert set(result["variants"]) == {"torch fp32", "torch int8"}
    assert "onnxruntime serves fp32 or int8" in result["failed"]["onnxruntime bf16"]
    assert choose(result, 0.5, [Setting("onnxruntime", "bf16")]) == REFERENCE
