from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from xapp.cli import main
from xapp.config import load_descriptor
from xapp.data import TASKS, generate
from xapp.model import (Encoder, EncoderConfig, Head, WeightsFileError, exit_flops, head_flops, load_encoder, load_head,
                        save_encoder, save_head)
from xapp.model.heads import normalised_mean
from xapp.model.safefile import sha256_file
from xapp.config.manifest import read_manifest, task_heads
from xapp.model.side import side_features
from xapp.train import head_training
from xapp.train.head_training import (TrainSettings, accuracy_by_snr, cache_features, cache_side, cache_split, fit_head,
                                      split_seed, task_split, train_all)
from xapp.train.memory import release_freed_memory

SMALL = EncoderConfig(dim=64, depth=4, heads=4)
REPO = Path(__file__).resolve().parent.parent
TINY = TrainSettings(train=64, val=32, test=48, epochs=2, chunk=32)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("enc") / "encoder.safetensors"
    save_encoder(path, Encoder(SMALL))
    return path


@pytest.fixture(scope="module")
def trained(encoder_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("heads")
    encoder = load_encoder(encoder_file)
    manifest = train_all(encoder, {"file": str(encoder_file), "sha256": sha256_file(encoder_file)},
                         ["los", "modulation"], TINY, out, "xapp heads train (test)", progress=False, log=lambda s: None)
    return encoder, manifest


def test_mean_head_on_pooled_features_equals_its_token_forward():
    torch.manual_seed(1)
    h = torch.randn(5, 65, 32) * 3 + 1
    for hidden in (0, 16):
        head = Head(32, 7, hidden=hidden)
        torch.nn.init.normal_(head.norm.weight)
        torch.nn.init.normal_(head.norm.bias)
        torch.testing.assert_close(head.forward_pooled(normalised_mean(h)), head(h))
    with pytest.raises(ValueError, match="mean-pooling"):
        Head(32, 7, pooling="attn").forward_pooled(normalised_mean(h))


@pytest.mark.parametrize("pooling,hidden", [(TrainSettings().pooling, TrainSettings().hidden), ("attn", 0), ("mean", 128)])
def test_every_task_head_is_under_one_percent_of_the_encoder(pooling, hidden):
    encoder_params = sum(p.numel() for p in Encoder().parameters())
    for spec in TASKS.values():
        head = Head(EncoderConfig().dim, len(spec.classes), pooling=pooling, hidden=hidden)
        assert sum(p.numel() for p in head.parameters()) < 0.01 * encoder_params, spec.name


def test_fit_head_learns_separable_features_and_is_deterministic():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32)).astype(np.float32)
    y = rng.integers(0, 4, 400)
    x = torch.from_numpy(centres[y] + 0.3 * rng.normal(size=(400, 32)).astype(np.float32))
    settings = TrainSettings(epochs=5, batch=32)
    head, val_acc = fit_head(x[:300], y[:300], x[300:], y[300:], 4, settings, seed=3)
    assert val_acc > 0.9
    again, _ = fit_head(x[:300], y[:300], x[300:], y[300:], 4, settings, seed=3)
    for key, value in head.state_dict().items():
        torch.testing.assert_close(value, again.state_dict()[key], rtol=0, atol=0)


def test_accuracy_by_snr_bins_by_lower_edge():
    snr = np.array([-20.0, -19.5, -18.0, 3.9, 4.0, 5.9])
    y = np.array([0, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 1, 2, 0, 2])
    assert accuracy_by_snr(pred, y, snr) == {
        -20.0: {"accuracy": 0.5, "n": 2}, -18.0: {"accuracy": 1.0, "n": 1},
        2.0: {"accuracy": 1.0, "n": 1}, 4.0: {"accuracy": 0.5, "n": 2},
    }


def test_manifest_lists_every_exit_with_its_file_metrics_and_flops(trained):
    encoder, path = trained
    manifest = read_manifest(path)
    assert manifest["command"] == "xapp heads train (test)"
    assert list(manifest["tasks"]) == ["los", "modulation"]
    assert [(h["task"], h["exit"]) for h in manifest["heads"]] == [(t, k) for t in ("los", "modulation") for k in (1, 2, 3, 4)]
    for task in ("los", "modulation"):
        info = manifest["tasks"][task]
        assert info["classes"] == list(TASKS[task].classes)
        assert info["splits"]["test"] == {"n": 48, "seed": split_seed(0, "test")}
        entries = task_heads(manifest, task, path)
        enc = exit_flops(SMALL, 65)
        for h in entries:
            assert h["path"] == path.parent / task / f"exit{h['exit']}.safetensors"
            assert sha256_file(h["path"]) == h["sha256"]
            head, meta = load_head(h["path"], h["sha256"])
            assert (meta["task"], meta["exit"], meta["classes"]) == (task, h["exit"], info["classes"])
            assert h["classes"] == info["classes"]
            assert h["gflops"] == pytest.approx((enc[h["exit"] - 1] + head_flops(64, len(info["classes"]), TINY.hidden)) / 1e9)
            assert 0 <= h["val_accuracy"] <= 1 and 0 <= h["test_accuracy"] <= 1
    snr_bins = task_heads(manifest, "modulation", path)[0]["test_accuracy_by_snr"]
    assert sum(b["n"] for b in snr_bins.values()) == 48


def test_manifest_test_accuracy_is_what_the_shipped_head_scores_on_the_test_split(trained):
    encoder, path = trained
    manifest = read_manifest(path)
    test = manifest["tasks"]["los"]["splits"]["test"]
    data = generate("los", test["n"], test["seed"])
    with torch.no_grad():
        states = encoder(torch.from_numpy(data.x), [1, 2, 3, 4])
    for h in task_heads(manifest, "los", path):
        head, _ = load_head(h["path"], h["sha256"])
        with torch.no_grad():
            acc = float((head(states[h["exit"]]).argmax(-1).numpy() == data.y).mean())
        assert abs(acc - h["test_accuracy"]) <= 1 / test["n"] + 1e-9  # one frame may flip on float rounding


def test_head_load_refuses_a_sha256_mismatch_and_a_corrupt_file(trained, tmp_path):
    _, path = trained
    entry = task_heads(read_manifest(path), "los", path)[0]
    with pytest.raises(WeightsFileError, match="does not match the pinned"):
        load_head(entry["path"], "0" * 64)
    corrupt = tmp_path / "exit1.safetensors"
    corrupt.write_bytes(entry["path"].read_bytes()[:-40])
    with pytest.raises(WeightsFileError, match="not a readable safetensors file"):
        load_head(corrupt)


def test_cli_trains_heads_then_selects_exits_into_a_descriptor(encoder_file, tmp_path, capsys):
    (tmp_path / "descriptors").mkdir()
    descriptor = tmp_path / "descriptors" / "default.yaml"
    descriptor.write_text((REPO / "descriptors" / "default.yaml").read_text()
                          .replace("checkpoint: null", f"checkpoint: {encoder_file}", 1))
    out = tmp_path / "heads"
    rc = main(["heads", "train", "--checkpoint", str(encoder_file), "--tasks", "modulation,interference,beam",
               "--out", str(out), "--train", "32", "--val", "16", "--test", "16", "--epochs", "1", "--quiet"])
    assert rc == 0
    manifest = read_manifest(out / "manifest.yaml")
    assert manifest["command"].startswith("xapp heads train --tasks modulation,interference,beam")
    rc = main(["heads", "select", "--manifest", str(out / "manifest.yaml"), "--descriptor", str(descriptor)])
    assert rc == 0
    doc = yaml.safe_load(descriptor.read_text())
    assert doc["heads"]["sha256"] == sha256_file(out / "manifest.yaml")  # the new manifest, pinned
    for task, spec in load_descriptor(descriptor).tasks.items():
        assert "head" not in doc["tasks"][task]  # heads come from the manifest, by exit
        assert (spec.head, spec.sha256) == (out / task / f"exit{spec.exit}.safetensors",
                                            sha256_file(out / task / f"exit{spec.exit}.safetensors"))
    capsys.readouterr()
    assert main(["heads", "select", "--manifest", str(out / "manifest.yaml"), "--budget-gflops", "0.0001",
                 "--descriptor", str(descriptor)]) == 2
    assert "no exit fits a budget" in capsys.readouterr().err
    first_exits = [h["gflops"] for h in manifest["heads"] if h["exit"] == 1]
    budget = sum(first_exits) / len(first_exits) + 1e-6  # every task at exit 1 fits, nothing deeper does
    assert main(["heads", "select", "--manifest", str(out / "manifest.yaml"), "--mean-budget-gflops", str(budget),
                 "--descriptor", str(descriptor)]) == 0
    assert "mean over these tasks" in capsys.readouterr().out
    doc = yaml.safe_load(descriptor.read_text())
    assert all(doc["tasks"][task]["exit"] == 1 for task in ("modulation", "interference", "beam"))


def test_cli_refuses_unknown_tasks(encoder_file, tmp_path, capsys):
    assert main(["heads", "train", "--checkpoint", str(encoder_file), "--tasks", "modulation,radar",
                 "--out", str(tmp_path)]) == 2
    assert "unknown task(s) ['radar']" in capsys.readouterr().err
    for exits, message in (("2,x", "comma-separated exit numbers"), ("0,2", "exits [0] outside the encoder's 1..4")):
        assert main(["heads", "train", "--checkpoint", str(encoder_file), "--tasks", "los", "--exits", exits,
                     "--out", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("poolings", ["mean,attn", "mean,energy"])
def test_several_poolings_train_at_every_exit_and_the_best_by_validation_is_kept(encoder_file, tmp_path, poolings):
    encoder = load_encoder(encoder_file)
    settings = TrainSettings(**{**TINY.__dict__, "pooling": poolings, "queries": 2, "projections": 3})
    path = train_all(encoder, {"file": str(encoder_file), "sha256": sha256_file(encoder_file)}, ["beam"], settings,
                     tmp_path, "xapp heads train (test)", progress=False, log=lambda s: None)
    for h in task_heads(read_manifest(path), "beam", path):
        scores = h["by_pooling"]
        assert set(scores) == set(poolings.split(","))
        assert h["val_accuracy"] == max(s["val_accuracy"] for s in scores.values())
        assert h["test_accuracy"] == scores[h["pooling"]]["test_accuracy"]
        head, _ = load_head(h["path"], h["sha256"])
        assert head.pooling == h["pooling"]
        assert (head.queries == 2) == (h["pooling"] == "attn")
        assert (head.projections == 3) == (h["pooling"] == "energy")
        assert h["head_gflops"] < 0.02 * h["encoder_gflops"]


def test_energy_pooling_reads_the_mean_and_log_energies_of_its_projections_and_counts_its_flops(tmp_path):
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(2)
    head = Head(64, 16, pooling="energy", hidden=32, projections=5).eval()
    h = torch.randn(3, 65, 64)
    z = head.norm(h) @ head.pool.proj.weight.T  # [3, 65, 5]
    expected = torch.cat([head.norm(h).mean(1), (z**2).mean(1).add(1e-4).log(), (z**4).mean(1).add(1e-4).log()], -1)
    torch.testing.assert_close(head.features(h), expected)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        assert head(torch.randn(1, 65, 64)).shape == (1, 16)
    assert counter.get_total_flops() == pytest.approx(head.flops(65), rel=0.02)
    save_head(tmp_path / "e.safetensors", head, {"task": "beam", "exit": 1})
    loaded, _ = load_head(tmp_path / "e.safetensors")
    assert loaded.spec() == {"dim": 64, "num_classes": 16, "pooling": "energy", "hidden": 32, "projections": 5}
    torch.testing.assert_close(loaded(h), head(h))
    for bad in ({"pooling": "energy"}, {"pooling": "mean", "projections": 4}, {"pooling": "energy", "projections": 2,
                                                                                "queries": 2}):
        with pytest.raises(ValueError):
            Head(64, 16, **bad)
    with pytest.raises(ValueError, match="projection"):
        TrainSettings(pooling="mean,energy", projections=0).poolings()


def test_attention_pooling_with_several_queries_counts_its_flops():
    from torch.utils.flop_counter import FlopCounterMode

    head = Head(64, 16, pooling="attn", hidden=32, queries=4).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        assert head(torch.randn(1, 65, 64)).shape == (1, 16)
    assert counter.get_total_flops() == pytest.approx(head.flops(65), rel=0.02)
    with pytest.raises(ValueError, match="queries"):
        Head(64, 16, pooling="mean", queries=2)
    with pytest.raises(ValueError, match="pooling must be"):
        TrainSettings(pooling="mean,max").poolings()


def test_merge_replaces_one_tasks_heads_keeps_the_others_and_records_every_command(encoder_file, trained, tmp_path,
                                                                                   capsys):
    import shutil

    encoder, manifest_path = trained
    target = tmp_path / "heads"
    shutil.copytree(manifest_path.parent, target)
    before = read_manifest(target / "manifest.yaml")
    source = tmp_path / "los-energy"
    settings = TrainSettings(**{**TINY.__dict__, "pooling": "mean,energy", "projections": 3, "seed": 4})
    train_all(encoder, before["encoder"], ["los"], settings, source, "xapp heads train --tasks los (test)",
              progress=False, log=lambda s: None)
    assert main(["heads", "merge", str(source), "--into", str(target)]) == 0
    merged = read_manifest(target / "manifest.yaml")
    assert merged["command"] == [before["command"], "xapp heads train --tasks los (test)",
                                 f"xapp heads merge {source} --into {target}"]
    assert merged["tasks"]["modulation"] == before["tasks"]["modulation"]
    assert merged["tasks"]["los"]["settings"]["pooling"] == "mean,energy"
    assert merged["tasks"]["los"]["splits"]["train"]["seed"] != before["tasks"]["los"]["splits"]["train"]["seed"]
    source_heads = read_manifest(source / "manifest.yaml")["heads"]
    assert [h for h in merged["heads"] if h["task"] == "los"] == source_heads
    for h in task_heads(merged, "los", target / "manifest.yaml") + task_heads(merged, "modulation", target / "manifest.yaml"):
        assert sha256_file(h["path"]) == h["sha256"]
    # heads of another encoder are refused and the target is left as it was
    other = tmp_path / "other"
    shutil.copytree(source, other)
    foreign = read_manifest(other / "manifest.yaml")
    foreign["encoder"]["sha256"] = "0" * 64
    (other / "manifest.yaml").write_text(yaml.safe_dump(foreign))
    kept = (target / "manifest.yaml").read_text()
    assert main(["heads", "merge", str(other), "--into", str(target)]) == 2
    assert "different encoders" in capsys.readouterr().err and (target / "manifest.yaml").read_text() == kept


def test_heads_at_some_exits_replace_those_exits_only(encoder_file, trained, tmp_path, capsys):
    import shutil

    encoder, manifest_path = trained
    target = tmp_path / "heads"
    shutil.copytree(manifest_path.parent, target)
    before = read_manifest(target / "manifest.yaml")
    source = tmp_path / "los-exit2"
    more = TrainSettings(**{**TINY.__dict__, "train": 96, "exits": (2,)})
    train_all(encoder, before["encoder"], ["los"], more, source, "xapp heads train --exits 2 (test)",
              progress=False, log=lambda s: None)
    assert [h["exit"] for h in read_manifest(source / "manifest.yaml")["heads"]] == [2]
    assert main(["heads", "merge", str(source), "--into", str(target)]) == 0
    merged = read_manifest(target / "manifest.yaml")
    assert merged["tasks"] == before["tasks"]  # splits and settings of the task as they were
    los = {h["exit"]: h for h in merged["heads"] if h["task"] == "los"}
    old = {h["exit"]: h for h in before["heads"] if h["task"] == "los"}
    assert sorted(los) == sorted(old) == [1, 2, 3, 4]
    assert los[2]["sha256"] != old[2]["sha256"] and los[2]["settings"]["train"] == 96
    assert all(los[k] == old[k] for k in (1, 3, 4))
    for h in task_heads(merged, "los", target / "manifest.yaml"):
        assert sha256_file(h["path"]) == h["sha256"]
    # some exits trained on other test frames would be scored apart from the rest: refused, target kept
    other = tmp_path / "los-exit3"
    train_all(encoder, before["encoder"], ["los"], TrainSettings(**{**more.__dict__, "exits": (3,), "seed": 5}),
              other, "xapp heads train --exits 3 --seed 5 (test)", progress=False, log=lambda s: None)
    kept = (target / "manifest.yaml").read_text()
    assert main(["heads", "merge", str(other), "--into", str(target)]) == 2
    assert "must keep the task's --val, --test and --seed" in capsys.readouterr().err
    assert (target / "manifest.yaml").read_text() == kept
    with pytest.raises(ValueError, match="outside the encoder"):
        TrainSettings(exits=(5,)).exits_of(SMALL.depth)


def test_temperature_divides_the_logits_keeps_the_class_and_is_saved_with_the_head(tmp_path):
    torch.manual_seed(0)
    head = Head(16, 5, hidden=8).eval().requires_grad_(False)
    h = torch.randn(6, 9, 16)
    plain = head(h)
    head.temperature = 2.5
    np.testing.assert_allclose(head(h).numpy(), plain.numpy() / 2.5, rtol=1e-6)
    assert (head(h).argmax(-1) == plain.argmax(-1)).all()
    save_head(tmp_path / "h.safetensors", head, {"task": "los"})
    loaded, _ = load_head(tmp_path / "h.safetensors")
    assert loaded.temperature == 2.5 and torch.equal(loaded(h), head(h))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Head(16, 5, temperature=0.0)


def test_fitted_temperature_recovers_how_overconfident_logits_are():
    from xapp.train.calibration import fit_temperature, logits_error

    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20000, 6, generator=gen)
    y = torch.multinomial((logits / 2.0).softmax(-1), 1, generator=gen)[:, 0].numpy()  # right as often as logits / 2 say
    assert fit_temperature(logits, y) == pytest.approx(2.0, rel=0.05)
    assert logits_error(logits / 2.0, y) < 0.02 < 0.1 < logits_error(logits, y)


def test_window_fusion_runs_from_the_mean_to_the_sum_of_log_probabilities():
    torch.manual_seed(2)
    logits = torch.randn(6 * 3, 5)
    log_p = logits.log_softmax(-1).reshape(6, 3, 5)
    for exponent, want in ((1.0, log_p.mean(1)), (0.0, log_p.sum(1)), (0.5, log_p.sum(1) / 3 ** 0.5)):
        torch.testing.assert_close(Head(16, 5, window_exponent=exponent).fuse_windows(logits, 3), want)
    with pytest.raises(ValueError, match="window_exponent must lie in"):
        Head(16, 5, window_exponent=1.5)


def test_fitted_window_exponent_recovers_how_independent_the_windows_are():
    """Windows whose log-probabilities each carry a share of the evidence: their sum is calibrated, and
    the fit finds an exponent near 0; windows that repeat one look: near 1 (their mean)."""
    from xapp.train.calibration import calibrate_windows

    gen = torch.Generator().manual_seed(0)
    n, classes = 4000, 6
    truth = 2 * torch.randn(n, classes, generator=gen)
    y = torch.multinomial(truth.softmax(-1), 1, generator=gen)[:, 0].numpy()
    share = (truth / 2).repeat_interleave(2, dim=0)  # two windows, each half the evidence: sum = truth
    same = truth.repeat_interleave(2, dim=0)  # two windows, each the whole of it: mean = truth
    for windows_logits, low, high in ((share, 0.0, 0.2), (same, 0.8, 1.0)):
        head = Head(16, classes)
        fitted = calibrate_windows(head, {2: (windows_logits, y)})
        assert low <= head.window_exponent == fitted["window_exponent"] <= high
        assert fitted["val_window_calibration_error"][2] <= fitted["val_window_calibration_error_mean_rule"][2] + 1e-9


def test_calibrate_fits_window_exponents_on_validation_captures(encoder_file, trained, tmp_path, capsys):
    import shutil

    _, manifest_path = trained
    target = tmp_path / "heads"
    shutil.copytree(manifest_path.parent, target)
    args = ["heads", "calibrate", str(target), "--tasks", "los", "--checkpoint", str(encoder_file)]
    assert main([*args, "--windows", "2,4"]) == 0
    for h in task_heads(read_manifest(target / "manifest.yaml"), "los", target / "manifest.yaml"):
        assert load_head(h["path"], h["sha256"])[0].window_exponent == h["window_exponent"]
        assert 0 <= h["window_exponent"] <= 1 and h["windows_calibrated_on"] == "validation captures of 2, 4 windows"
        assert set(h["val_window_calibration_error"]) == set(h["val_window_calibration_error_mean_rule"]) == {2, 4}
    assert "window exponent" in capsys.readouterr().out
    assert main([*args, "--windows", "1"]) == 2 and "window counts from 2 to 16" in capsys.readouterr().err
    assert main([*args, "--windows", "2", "--data", str(tmp_path / "x.npz")]) == 2
    assert "give it without --data" in capsys.readouterr().err


def test_training_calibrates_every_kept_head_and_calibrate_refits_them_alike(encoder_file, trained, tmp_path):
    import shutil

    _, manifest_path = trained
    for h in task_heads(read_manifest(manifest_path), "los", manifest_path):
        assert load_head(h["path"], h["sha256"])[0].temperature == h["temperature"] > 0
        assert 0 <= h["val_calibration_error"] <= 1 and 0 <= h["val_calibration_error_uncalibrated"] <= 1
    target = tmp_path / "heads"
    shutil.copytree(manifest_path.parent, target)
    before = read_manifest(target / "manifest.yaml")
    assert main(["heads", "calibrate", str(target), "--tasks", "los", "--checkpoint", str(encoder_file)]) == 0
    after = read_manifest(target / "manifest.yaml")
    assert after["command"] == [before["command"], f"xapp heads calibrate {target} --tasks los --checkpoint {encoder_file}"]
    for old, new in zip(before["heads"], after["heads"]):
        assert new["temperature"] == pytest.approx(old["temperature"], rel=0.05)  # refit from the raw logits
        assert sha256_file(target / new["file"]) == new["sha256"]
        if new["task"] == "modulation":
            assert new == old
    files = {h["file"]: h["sha256"] for h in after["heads"]}
    assert main(["heads", "calibrate", str(target), "--tasks", "los", "--checkpoint", str(encoder_file)]) == 0
    assert {h["file"]: h["sha256"] for h in read_manifest(target / "manifest.yaml")["heads"]} == files


def test_calibrate_fits_on_an_operators_recording_of_one_task(encoder_file, trained, tmp_path, capsys):
    import shutil

    from xapp.data.io import save_npz

    _, manifest_path = trained
    target = tmp_path / "heads-site"
    shutil.copytree(manifest_path.parent, target)
    site = tmp_path / "site.npz"
    save_npz(site, generate("los", 40, 123, snr_db=(0.0, 5.0)))
    args = ["heads", "calibrate", str(target), "--checkpoint", str(encoder_file), "--data", str(site)]
    assert main(args) == 2 and "name the one task" in capsys.readouterr().err
    assert main([*args, "--tasks", "modulation"]) == 2  # los frames are 16x64, modulation's 1x1024
    assert "frames are [16, 64]" in capsys.readouterr().err
    long_site = tmp_path / "long.npz"
    save_npz(long_site, generate("los", 8, 124, samples=128))  # two of the heads' frames each, one label
    assert main([*args[:-1], str(long_site), "--tasks", "los"]) == 2
    assert "--data needs frames of the heads' own shape [16, 64]" in capsys.readouterr().err
    assert main([*args, "--tasks", "los"]) == 0
    heads = read_manifest(target / "manifest.yaml")["heads"]
    assert {h["calibrated_on"] for h in heads if h["task"] == "los"} == {str(site)}
    assert {h["calibrated_on"] for h in heads if h["task"] == "modulation"} == {"validation split"}


def test_side_features_are_cached_chunk_by_chunk_into_one_tensor_exactly():
    x = generate("interference", 37, 11).x
    got = cache_side("lines", x, chunk=16)  # three chunks, the last a short one
    assert got.shape == (37, 4)
    assert torch.equal(got, side_features("lines", torch.from_numpy(x)))
    release_freed_memory()  # between chunks; a no-op where the C library has no malloc_trim


def test_a_split_cached_part_by_part_holds_what_caching_it_whole_gives(encoder_file, monkeypatch):
    """Training splits are generated and cached in parts, so their frames are never all in memory; what
    the heads read is what one pass over the whole split gives."""
    encoder = load_encoder(encoder_file)
    settings = TrainSettings(train=1100, chunk=64)
    monkeypatch.setattr(head_training, "STREAM_PART", 512)  # three parts, the last a short one
    got = cache_split(encoder, "modulation", "train", settings, [1, 3], "mean", ["lines"], progress=False)
    data = task_split("modulation", "train", settings)
    want = cache_features(encoder, data.x, [1, 3], 64, "mean", progress=False)
    assert set(got.states) == {1, 3} and all(torch.equal(got.states[k], want[k]) for k in want)
    assert torch.equal(got.sides["lines"], cache_side("lines", data.x))
    assert np.array_equal(got.y, data.y) and np.array_equal(got.snr_db, data.snr_db) and got.frame_shape == (1, 1024)
