"""Baselines: the classical detectors on signals whose answer is known, FLOP counts, the supervised
networks learning, the cached JSON from the CLI, how the report tells whether a cache used its test
frames, and the report section that survives regeneration."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from xapp.cli import main
from xapp.crosscheck import generate as crosscheck
from xapp.crosscheck.array import best_beam, steering
from xapp.data import TaskData, generate
from xapp.train.baselines.classical import SPATIAL_FEATURES, FeatureMLP, dft_beam
from xapp.train.baselines.compare import keep_section, verdict
from xapp.train.baselines.frames import fingerprint, same_frames, signature
from xapp.train.baselines.features import NAMES, SPATIAL_NAMES, cumulants, features
from xapp.train.head_training import cache_side
from xapp.train.baselines.networks import ConvLSTM, SmallCNN, SpectrogramCNN, network_flops, predict, train_network


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny models here run faster on one thread, and far faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_dft_beam_reads_the_contract_convention():
    t = np.arange(64)
    waves = np.stack([steering(np.array((b - 8) / 8))[:, None] * np.exp(2j * np.pi * 0.05 * t) for b in range(16)])
    assert dft_beam(waves).tolist() == list(range(16))
    d = crosscheck("beam", 40, seed=0, snr_db=40)
    assert np.array_equal(dft_beam(d.x), [best_beam(f) for f in d.x])


def plane_waves_or_scatter(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: one plane wave from a random direction; class 1: spatially white (rich scattering)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(2, size=n)
    one = steering(rng.uniform(-1, 1, n))[..., None] * np.exp(2j * np.pi * rng.random((n, 1, 64)))
    many = (rng.standard_normal((n, 16, 64)) + 1j * rng.standard_normal((n, 16, 64))) / np.sqrt(2)
    return np.where(y[:, None, None] == 0, one, many).astype(np.complex64), y


def test_spatial_features_see_one_direction_against_many():
    x, y = plane_waves_or_scatter(200, 0)
    f = cache_side("spatial", x).numpy()
    assert f.shape == (200, len(SPATIAL_NAMES)) and np.isfinite(f).all()
    top_eigenvalue, top_beam = f[:, 0], f[:, 31]  # log10 shares: one direction holds all the energy
    assert top_eigenvalue[y == 0].min() > -0.01 and top_eigenvalue[y == 1].max() < np.log10(0.5)
    assert top_beam[y == 0].min() > top_beam[y == 1].max()
    same_wave_elsewhere = cache_side("spatial", x[y == 0][:1] * np.exp(1j * np.pi * 0.3 * np.arange(16))[None, :, None]).numpy()
    assert np.allclose(same_wave_elsewhere[0, :31], f[y == 0][0, :31], atol=1e-4)  # blind to direction
    model = FeatureMLP(2, SPATIAL_FEATURES, epochs=60).fit(x, y)
    xt, yt = plane_waves_or_scatter(100, 1)
    assert np.mean(model.predict(xt) == yt) > 0.95
    assert model.flops(16, 64) > 8 * 16 * 16 * 64


def test_fourth_order_cumulant_of_bpsk_and_qpsk():
    rng = np.random.default_rng(1)
    bpsk = (2 * rng.integers(2, size=(1, 20000)) - 1).astype(complex)
    qpsk = np.exp(1j * np.pi / 4 * (2 * rng.integers(4, size=(1, 20000)) + 1))
    assert cumulants(bpsk)[0, 1] == pytest.approx(2.0, abs=0.05)  # |C40| = 2 for BPSK, 1 for QPSK
    assert cumulants(qpsk)[0, 1] == pytest.approx(1.0, abs=0.05)


def toy_frames(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: white noise; class 1: a tone at a random frequency in noise (SNR 0 dB)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(2, size=n)
    noise = (rng.standard_normal((n, 1, 256)) + 1j * rng.standard_normal((n, 1, 256))) / np.sqrt(2)
    tone = np.exp(2j * np.pi * rng.uniform(-0.5, 0.5, (n, 1, 1)) * np.arange(256))
    return (noise + y[:, None, None] * tone).astype(np.complex64), y


def test_feature_classifier_learns_tone_against_noise():
    x, y = toy_frames(300, 0)
    f = features(x)
    assert f.shape == (300, len(NAMES)) and np.isfinite(f).all()
    model = FeatureMLP(2, epochs=60).fit(x, y)
    xt, yt = toy_frames(200, 1)
    assert np.mean(model.predict(xt) == yt) > 0.95
    assert model.flops(1, 256) > 2 * (len(NAMES) * 128 + 128 * 128 + 128 * 2)


def test_network_flops_count_convolutions_and_the_lstm():
    cnn = SmallCNN(32, 16, width=8)
    expected = 2 * 64 * 3 * (32 * 8 + 8 * 8 + 8 * 8) + 2 * 16 * 8 * 2
    assert abs(network_flops(cnn, 16, 64) - expected) / expected < 0.05  # plus the batch-norm/ReLU/pool
    lstm = ConvLSTM(11)
    assert network_flops(lstm, 1, 1024) > lstm.extra_flops(1024) > 0


def test_supervised_network_learns_tone_against_noise():
    x, y = toy_frames(400, 2)
    net = train_network(SpectrogramCNN(2, width=16), x, y, epochs=10, seed=0)
    xt, yt = toy_frames(200, 3)
    assert np.mean(predict(net, xt) == yt) > 0.9
    assert isinstance(net, nn.Module) and not net.training


def test_cli_writes_cached_baselines(tmp_path):
    manifest = tmp_path / "manifest.yaml"
    split = {"train": {"n": 160, "seed": 1}, "val": {"n": 16, "seed": 2}, "test": {"n": 48, "seed": 3}}
    manifest.write_text(json.dumps({"command": "test", "encoder": {}, "settings": {}, "heads": [],
                                    "tasks": {t: {"classes": [], "frame_shape": [16, 64], "splits": split}
                                              for t in ("beam", "los")}}))
    out = tmp_path / "baselines.json"
    torch.manual_seed(0)
    assert main(["baselines", "--manifest", str(manifest), "--tasks", "beam,los", "--epochs", "1", "--out", str(out)]) == 0
    cached = json.loads(out.read_text())
    beam = cached["tasks"]["beam"]
    assert beam["classical"]["ours"]["accuracy"] > 0.5 and beam["classical"]["crosscheck"]["n"] == 48
    assert cached["tasks"]["los"]["classical"]["crosscheck"] is None
    for task in ("beam", "los"):
        for kind in ("classical", "supervised"):
            assert 0 < cached["tasks"][task][kind]["gflops"] < 0.1
        test = generate(task, 48, 3)
        assert same_frames(cached["tasks"][task], _identity(test))  # the report will take this cache
        assert not same_frames(cached["tasks"][task], _identity(generate(task, 48, 4)))
    assert main(["baselines", "--manifest", str(manifest), "--tasks", "modulation", "--out", str(out)]) == 2
    # one task again: its entry is replaced, the other task's kept, the command joins the cache's updates
    before = cached["tasks"]["beam"]
    assert main(["baselines", "--manifest", str(manifest), "--tasks", "los", "--epochs", "1", "--out", str(out)]) == 0
    updated = json.loads(out.read_text())
    assert updated["tasks"]["beam"] == before and set(updated["tasks"]) == {"beam", "los"}
    assert updated["command"] == cached["command"] and len(updated["updates"]) == 1
    # trained otherwise (two epochs, not one): refused, the cache left as it was
    assert main(["baselines", "--manifest", str(manifest), "--tasks", "los", "--epochs", "2", "--out", str(out)]) == 2
    assert json.loads(out.read_text()) == updated


def _identity(data: TaskData) -> dict:
    return {"test_fingerprint": fingerprint(data), "test_signature": signature(data)}


def _with(data: TaskData, x: np.ndarray | None = None, y: np.ndarray | None = None) -> TaskData:
    return TaskData(data.task, data.x if x is None else x, data.y if y is None else y, data.classes, data.snr_db, {})


def test_cached_results_match_frames_that_differ_only_in_the_last_bits():
    """Another CPU's SIMD code changes a split's bytes, not its frames: the cache still counts."""
    data = generate("modulation", 64, 11)
    rng = np.random.default_rng(0)
    jitter = (1 + 1.2e-7 * rng.choice([-1.0, 0.0, 1.0], data.x.shape)).astype(np.float32)  # ~1 ulp of float32
    nearby = _with(data, x=(data.x * jitter).astype(np.complex64))
    cached, current = _identity(data), _identity(nearby)
    assert cached["test_fingerprint"] != current["test_fingerprint"]
    assert same_frames(cached, current)
    assert not same_frames({"test_fingerprint": cached["test_fingerprint"]}, current)  # no signature: bytes only


def test_cached_results_do_not_match_other_frames_or_labels():
    data = generate("modulation", 64, 11)
    cached = _identity(data)
    one_frame_changed = data.x.copy()
    one_frame_changed[5] = generate("modulation", 1, 12).x[0]
    relabelled = data.y.copy()
    relabelled[0] = (relabelled[0] + 1) % len(data.classes)
    for other in (generate("modulation", 64, 12), _with(data, x=one_frame_changed), _with(data, y=relabelled),
                  _with(data, x=data.x[:63], y=data.y[:63])):
        assert not same_frames(cached, _identity(other))
    assert same_frames(cached, _identity(data))


def test_kept_section_survives_with_its_subsections():
    previous = "# Results\n\n## Claims\n\nold\n\n## Heads retrained on the broad data, previous encoder\n\n" \
               "| a |\n\n### modulation\n\nrow\n\n## Accuracy per exit\n\nx\n"
    kept = keep_section(previous, "Heads retrained on the broad data, previous encoder")
    assert kept.startswith("## Heads retrained") and "### modulation\n\nrow" in kept and "Accuracy per exit" not in kept
    assert keep_section("# Results\n\n## Claims\n", "Heads retrained on the broad data") == ""


def test_verdict_names_the_better_decider_beyond_twice_the_standard_error():
    def entry(classical: float, supervised: float) -> dict:
        return {"classical": {"ours": {"accuracy": classical}}, "supervised": {"ours": {"accuracy": supervised}}}

    head = {"accuracy": 0.49, "n": 4000}  # SE of a difference near 50 %: 1.1 points
    assert verdict(head, entry(0.518, 0.434)) == ("Against the best baseline (classical, 51.8 %) the head at the "
                                                  "chosen exit is -2.8 points (SE 1.1): the baseline decides better.")
    assert verdict(head, entry(0.30, 0.47)).endswith("+2.0 points (SE 1.1): a tie within noise.")
    assert "(supervised, 40.0 %)" in verdict(head, entry(0.30, 0.40)) and verdict(head, entry(0.30, 0.40)).endswith(
        "the head decides better.")


def test_confidence_scores_count_coverage_accuracy_and_calibration():
    from xapp.train.calibration import by_confidence, calibration_error

    rng = np.random.default_rng(0)
    confidence = rng.choice([0.3, 0.6, 0.9], 30000)
    honest = rng.random(30000) < confidence  # right with probability equal to the confidence
    assert calibration_error(honest, confidence) < 0.01
    overconfident = rng.random(30000) < confidence - 0.2
    assert calibration_error(overconfident, confidence) == pytest.approx(0.2, abs=0.01)
    rows = {r["min_confidence"]: r for r in by_confidence(honest, confidence, levels=(0.5, 0.9, 0.95))}
    assert rows[0.5]["coverage"] == pytest.approx(2 / 3, abs=0.01) and rows[0.5]["accuracy"] == pytest.approx(0.75, abs=0.01)
    assert rows[0.9]["accuracy"] == pytest.approx(0.9, abs=0.01)
    assert rows[0.95] == {"min_confidence": 0.95, "coverage": 0.0, "accuracy": None}


def test_report_shows_what_acting_on_confident_decisions_gets():
    from xapp.train.baselines.compare import confident_decisions

    ours = {"by_confidence": [{"min_confidence": 0.9, "coverage": 0.54, "accuracy": 0.985}], "calibration_error": 0.012}
    lines = confident_decisions({"ours": ours, "crosscheck": None}, 3)
    assert "| 0.9 | 54.0 % | 98.5 % | n/a | n/a |" in lines
    assert any("1.2 points on our test set" in line for line in lines)
    assert confident_decisions({"ours": {"accuracy": 0.5}, "crosscheck": None}, 3) == []  # a report from before
