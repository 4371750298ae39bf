"""Side features beside the exit: computed like the classical baselines, read by heads, served by both
engines with the same decisions, counted in FLOPs, trained and kept only where validation prefers them."""

import math
import time

import numpy as np
import pytest
import torch

from xapp.data import generate
from xapp.data.interference import DESIRED
from xapp.data.spatial import beam_energy
from xapp.engine.runner import EarlyExitEngine, TaskPlan, side_stages
from xapp.engine.static_graph import StaticGraphEngine
from xapp.model import Encoder, EncoderConfig, Head, load_encoder, load_head, save_encoder, save_head
from xapp.model.heads import read_head
from xapp.model import side
from xapp.model.side import SideFeatureError, _symbol_rate, side_features, side_features_of, side_flops
from xapp.model.policies import Policy
from xapp.ops.metrics import Metrics
from xapp.config.manifest import read_manifest, task_heads
from xapp.model.safefile import sha256_file
from xapp.train.baselines.classical import FeatureMLP
from xapp.train.baselines.features import spectral_line
from xapp.train.head_training import TrainSettings, train_all
from xapp.vocab import Request

CFG = EncoderConfig(dim=32, depth=4, heads=4)
CLASSES = {"modulation": tuple(f"m{i}" for i in range(11)), "beam": tuple(f"beam{i:02d}" for i in range(16))}
SHAPES = {"modulation": (1, 1024), "beam": (16, 64)}


@pytest.fixture(autouse=True, params=[True, False], ids=["compiled", "torch"])
def side_path(request, monkeypatch):
    """Every test here runs on the CPU kernels (what serves on a CPU) and on the torch reference (what
    serves on other devices)."""
    monkeypatch.setattr(side, "COMPILED", request.param)
    return request.param


def random_frames(n: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((n, *shape)) + 1j * rng.standard_normal((n, *shape))) / np.sqrt(2)).astype(np.complex64)


def test_spectral_lines_match_the_classical_baseline_features():
    x = generate("modulation", 64, seed=3).x
    want = np.stack([spectral_line(x.reshape(len(x), -1).astype(np.complex128) ** k) for k in (1, 2, 4, 8)], axis=1)
    got = side_features("lines", torch.from_numpy(x)).numpy()
    assert got.shape == (64, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-4)


def test_beam_shares_are_the_dft_beam_spectrum_in_class_order():
    data = generate("beam", 64, seed=4)
    got = side_features("beams", torch.from_numpy(data.x)).numpy()
    energy = beam_energy(data.x)
    np.testing.assert_allclose(got, np.log10(energy / energy.sum(axis=1, keepdims=True)), atol=1e-4)
    assert (got.argmax(axis=1) == energy.argmax(axis=1)).all()


def test_blind_symbol_recovery_finds_rate_and_carrier_and_tells_qam16_from_qam64():
    """On clean-channel QAM frames at 25 dB the recovered symbol rate and carrier match the generator's
    draws on most frames, and the fits to the 16- and 64-point grids rank each frame's own grid first
    far more often than chance."""
    data = generate("modulation", 200, seed=6, snr_db=25.0, impairments=False, classes=["QAM16", "QAM64"])
    x = torch.from_numpy(data.x)
    got = side_features("symbols", x).numpy()
    assert got.shape == (200, 22) and np.isfinite(got).all()
    rate = 10 ** got[:, 13]
    assert (np.abs(rate * data.meta["sps"] - 1) < 0.01).mean() > 0.8
    is64 = np.array(data.classes)[data.y] == "QAM64"
    fit16, fit64 = got[:, 4 + 1], got[:, 4 + 2]  # tracked symbols: log distance to the 16- and 64-point grids
    assert ((fit64 - fit16 < np.median(fit64 - fit16)) == is64).mean() > 0.8
    np.testing.assert_allclose(got[:, :4], side_features("lines", x).numpy(), rtol=1e-5)
    np.testing.assert_allclose(got[:, 14:].sum(axis=1), 1.0, rtol=1e-5)  # the amplitude histogram's shares


def test_impairment_features_ignore_the_channel_phase_and_a_carrier_offset():
    """The channel's phase and the carrier offset are drawn per frame and say nothing of the emitter:
    turning a frame and shifting its carrier by whole bins of the x^4 line leaves every feature where
    it was (the ratios cancel the phase, the carrier is taken out first)."""
    x = torch.from_numpy(generate("fingerprint", 32, seed=11).x)
    t = torch.arange(x.shape[-1], dtype=torch.float64)
    shift = 8 / (4 * side.SYMBOL_PAD * x.shape[-1])  # 8 bins of the x^4 line's padded FFT
    moved = x * torch.polar(torch.ones_like(t), 0.7 + 2 * math.pi * shift * t).to(torch.complex64)
    want, got = side_features("impairments", x), side_features("impairments", moved)
    assert want.shape == (32, side.IMPAIRMENT_FEATURES) and torch.isfinite(want).all()
    torch.testing.assert_close(got[:, :-1], want[:, :-1], atol=2e-3, rtol=2e-2)  # the last is the carrier itself


def test_impairment_features_tell_the_emitters_apart_where_the_hand_features_do_not():
    """The `fingerprint` task's 8 emitters differ only in their hardware: an MLP on the impairment
    features of 3,000 frames names more than twice chance's share of 1,000 others, and beats the same
    MLP on the 27 hand features by a wide margin."""
    train, test = generate("fingerprint", 3000, seed=12), generate("fingerprint", 1000, seed=13)
    accuracy = {}
    for kind in ("impairments", "hand"):
        f_train, f_test = (side_features(kind, torch.from_numpy(d.x)).numpy() for d in (train, test))
        mlp = FeatureMLP(8, epochs=300).fit_features(f_train, train.y)
        accuracy[kind] = (mlp.predict_features(f_test) == test.y).mean()
    assert accuracy["impairments"] > 0.5 and accuracy["impairments"] > accuracy["hand"] + 0.1, accuracy


def test_taking_out_the_desired_signal_uncovers_an_interferer_15_db_under_it():
    """Interference frames at 25 dB: the decision-directed residual of a single-carrier desired signal is
    left near the noise, 15 dB and more under the frame, and rises where a wideband interferer sits
    15 dB under the desired signal; the frame's own spectral lines tell the two apart far less well."""
    clean = generate("interference", 200, seed=21, snr_db=25.0, impairments=False, classes=["none"])
    hit = generate("interference", 200, seed=22, snr_db=25.0, inr_db=10.0, impairments=False,
                   classes=["ofdm", "oqpsk", "chirp"])
    features = [side_features("cancel", torch.from_numpy(d.x)).numpy() for d in (clean, hit)]
    assert features[0].shape == (200, 53) and all(np.isfinite(f).all() for f in features)
    single_carrier = [d.meta["desired"] < 6 for d in (clean, hit)]  # not the FSK desired signals
    residual = [f[m, 4] for f, m in zip(features, single_carrier)]  # log10 power of the decision-directed residual
    assert np.median(residual[0]) < -1.5

    def separation(a: np.ndarray, b: np.ndarray) -> float:
        threshold = np.median(np.concatenate([a, b]))  # the better of the two directions of one cut
        below = ((a < threshold).mean() + (b >= threshold).mean()) / 2
        return max(below, 1 - below)

    assert separation(*residual) > 0.7
    lines = [f[m, :4] for f, m in zip(features, single_carrier)]
    assert max(separation(lines[0][:, k], lines[1][:, k]) for k in range(4)) < separation(*residual) - 0.1


def test_the_canceller_leaves_little_of_a_clean_desired_signal_whatever_its_grid_and_carrier():
    """Interference-free frames at 40 dB, each also shifted by a carrier offset of up to 0.1: the
    decision-directed residual sits 23.5 dB under BPSK and QPSK desired signals and 22 dB under PAM4 and
    QAM16 (decided on the 64-point grid they left 20 and 19 dB, and the signal's share along the mean
    the receiver removes, at the carrier, came back as a tone of up to -18 dB)."""
    data = generate("interference", 300, seed=23, snr_db=40.0, impairments=False, classes=["none"])
    n = data.x.shape[-1]
    offset = np.random.default_rng(0).uniform(-0.1, 0.1, (300, 1, 1))
    shifted = (data.x * np.exp(2j * np.pi * offset * np.arange(n))).astype(np.complex64)
    for x in (data.x, shifted):
        residual = side_features("cancel", torch.from_numpy(x)).numpy()[:, 4]  # log10, the frame at unit power
        for kinds, bound in ((("BPSK", "QPSK"), -2.35), (("PAM4", "QAM16"), -2.2)):
            picked = np.isin(data.meta["desired"], [DESIRED.index(k) for k in kinds])
            assert picked.sum() > 40 and np.median(residual[picked]) < bound


def test_the_peak_track_tells_a_sweep_from_a_hopper():
    """`cancel` follows the strongest bin of the frame's short-time spectrum (here at 32 samples per
    window): a chirp sweeping the band once per frame moves one bin a window at a steady pace; a hopper
    holding each of 16 channels for 128 samples stays put, then jumps."""
    n, rng = 1024, np.random.default_rng(0)
    t = np.arange(n)
    noise = 0.03 * (rng.standard_normal((2, 8, n)) + 1j * rng.standard_normal((2, 8, n)))
    start = rng.uniform(-0.5, 0.5, (8, 1))
    chirp = np.exp(2j * np.pi * np.cumsum(np.mod(start + t / n + 0.5, 1.0) - 0.5, axis=1)) + noise[0]
    hops = (rng.integers(0, 16, (8, n // 128)) - 7.5) / 16
    hopper = np.exp(2j * np.pi * np.cumsum(np.repeat(hops, 128, axis=1), axis=1)) + noise[1]
    still, small, jump, steady, _ = (side_features("cancel", torch.from_numpy(np.stack([chirp, hopper], 1)
                                                   .reshape(16, 1, n).astype(np.complex64))).numpy()[:, 48:53].T)
    chirps, hoppers = np.arange(16) % 2 == 0, np.arange(16) % 2 == 1
    assert (still[chirps] < 0.2).all() and (small[chirps] > 0.7).all() and (steady[chirps] > 0.9).all()
    assert (still[hoppers] > 0.6).all() and (jump[hoppers] > 0.05).all() and steady[hoppers].mean() < 0.8


def test_one_call_for_several_kinds_gives_each_what_its_own_call_gives():
    """The engine asks for every task's side features at once; `symbols` and `cancel` parts then share one
    blind receiver pass, and every part gets exactly the features of its own call, in order."""
    modulation = torch.from_numpy(generate("modulation", 7, seed=3).x)
    interference = torch.from_numpy(generate("interference", 5, seed=4).x)
    beams = torch.from_numpy(generate("beam", 3, seed=5).x)
    wanted = [("symbols", modulation), ("beams", beams), ("cancel", interference), ("lines", modulation)]
    for (kind, frames), got in zip(wanted, side_features_of(wanted)):
        assert torch.equal(got, side_features(kind, frames))
    with pytest.raises(SideFeatureError):
        side_features_of([("symbols", modulation), ("cancel", beams)])


def test_unknown_kinds_and_frames_that_do_not_fit_are_refused():
    with pytest.raises(SideFeatureError, match="one of"):
        side_features("cumulants", torch.zeros(2, 1, 64, dtype=torch.complex64))
    with pytest.raises(SideFeatureError, match="need an antenna array"):
        side_features("beams", torch.zeros(2, 1, 64, dtype=torch.complex64))
    for kind in side.SINGLE_ANTENNA:
        with pytest.raises(SideFeatureError, match="need single-antenna frames"):
            side_features(kind, torch.zeros(2, 16, 64, dtype=torch.complex64))
    with pytest.raises(ValueError, match="needs the frame shape"):
        Head(32, 11, side="lines")
    with pytest.raises(ValueError, match="score 16 classes, the head has 11"):
        Head(32, 11, side="beams", frame_shape=(16, 64))


def test_a_side_head_needs_its_features_counts_their_flops_and_round_trips(tmp_path):
    torch.manual_seed(0)
    head = Head(32, 11, hidden=16, side="lines", frame_shape=(1, 1024)).eval()
    plain = Head(32, 11, hidden=16).eval()
    assert head.flops(65) == pytest.approx(plain.flops(65) + 2 * 4 * 16 + side_flops("lines", (1, 1024)))
    assert 0 < side_flops("lines", (1, 1024)) < 0.02 * 28e6  # under 2 % of one block of the shipped trunk
    h, frames = torch.randn(5, 65, 32), torch.from_numpy(random_frames(5, (1, 1024), 1))
    with pytest.raises(ValueError, match="reads 'lines' side features"):
        head(h)
    head.set_side_scale(torch.randn(100, 4) * 3 + 2)
    sha = save_head(tmp_path / "h.safetensors", head, {"task": "modulation", "exit": 1})
    loaded, _ = load_head(tmp_path / "h.safetensors", sha)
    assert loaded.side == "lines" and loaded.frame_shape == (1, 1024)
    torch.testing.assert_close(read_head(loaded, h, frames), read_head(head, h, frames))
    torch.testing.assert_close(loaded.side_std, head.side_std)


def test_a_beam_head_starts_as_the_dft_argmax():
    """The class-aligned gain: before any training the beams' own argmax decides."""
    torch.manual_seed(0)
    data = generate("beam", 200, seed=5)
    head = Head(32, 16, hidden=16, side="beams", frame_shape=(16, 64)).eval()
    frames = torch.from_numpy(data.x)
    with torch.inference_mode():
        labels = read_head(head, torch.randn(200, 65, 32) * 0.1, frames).argmax(-1).numpy()
    assert (labels == beam_energy(data.x).argmax(axis=1)).mean() > 0.97


@pytest.fixture(scope="module")
def served():
    torch.manual_seed(1)
    encoder = Encoder(CFG).eval()
    table = {
        "modulation": TaskPlan("modulation", CLASSES["modulation"],
                               {2: Head(CFG.dim, 11, hidden=8, side="lines", frame_shape=(1, 1024)).eval()}),
        "beam": TaskPlan("beam", CLASSES["beam"], {3: Head(CFG.dim, 16, hidden=8, side="beams", frame_shape=(16, 64)).eval()}),
    }
    rng = np.random.default_rng(2)
    reqs = []
    for i in range(90):
        task = ("modulation", "beam")[rng.integers(2)]
        t = time.monotonic()
        reqs.append(Request(f"node{i % 3}", task, random_frames(1, SHAPES[task], i)[0], i, "cell0", time.time_ns(), t, t + 1.0))
    return encoder, table, reqs


def decisions(engine, table, reqs, batch):
    out = []
    for i in range(0, len(reqs), batch):
        engine.run(reqs[i:i + batch], table, out.append)
    return {(d.task, d.seq): d for group in out for d in group}


@pytest.mark.parametrize("side_thread", [False, True])
def test_the_engine_reads_side_heads_as_offline(served, side_thread):
    encoder, table, reqs = served
    engine = EarlyExitEngine(encoder, Metrics(), side_thread=side_thread)
    got = decisions(engine, table, reqs, batch=32)
    engine.close()
    assert len(got) == len(reqs)
    with torch.inference_mode():
        for r in reqs:
            plan = table[r.task]
            frame = torch.from_numpy(r.frame[None].copy())
            logits = read_head(plan.heads[plan.exit], encoder(frame, [plan.exit])[plan.exit], frame)
            d = got[(r.task, r.seq)]
            assert d.class_index == int(logits.argmax()) and d.exit == plan.exit
            head = plan.heads[plan.exit]
            want_gflops = (encoder_flops(encoder, r.frame.shape, plan.exit) + head.flops(65)) / 1e9
            assert d.gflops == pytest.approx(want_gflops, rel=1e-9)


def encoder_flops(encoder, shape, k):
    from xapp.model import exit_flops
    return exit_flops(encoder.cfg, encoder.cfg.tokens(*shape))[k - 1]


@pytest.mark.parametrize("batch", [7, 45])
def test_static_graphs_give_the_engines_decisions_with_side_heads(served, batch):
    encoder, table, reqs = served
    want = decisions(EarlyExitEngine(encoder, Metrics()), table, reqs, batch)
    got = decisions(StaticGraphEngine(encoder, Metrics(), buckets=(16, 32)), table, reqs, batch)
    assert got.keys() == want.keys()
    for key, d in want.items():
        assert got[key].class_index == d.class_index
        assert got[key].confidence == pytest.approx(d.confidence, abs=1e-5)
        assert got[key].gflops == pytest.approx(d.gflops, rel=1e-9)


@pytest.mark.parametrize("kind", ["symbols", "cancel", "impairments"])
def test_a_head_reading_the_blind_receiver_decides_in_both_engines_as_offline(served, kind):
    """Blind symbol recovery (and the cancellation built on it) and the impairment statistics run per
    row: mixed into batches of other tasks' rows, each frame gets the decision its head gives it alone."""
    encoder, table, reqs = served
    head = Head(CFG.dim, 11, hidden=8, side=kind, frame_shape=(1, 1024)).eval()
    table = {**table, "modulation": TaskPlan("modulation", CLASSES["modulation"], {2: head})}
    rows = [r for r in reqs if r.task == "modulation"]
    with torch.inference_mode():
        want = [int(read_head(head, encoder(f, [2])[2], f).argmax()) for f in
                (torch.from_numpy(r.frame[None].copy()) for r in rows)]
    for engine in (EarlyExitEngine(encoder, Metrics()), EarlyExitEngine(encoder, Metrics(), side_thread=True),
                   StaticGraphEngine(encoder, Metrics(), buckets=(16, 32))):
        got = decisions(engine, table, reqs, 32)
        assert [got[("modulation", r.seq)].class_index for r in rows] == want


def test_a_loud_frame_is_decided_as_at_unit_power_and_its_batch_with_it(served):
    """A frame peaking at 1e37 (finite, so E2 lets it through) among others read by a `cancel` head:
    every frame of the batch is decided, the loud one as its unit-power self."""
    encoder, table, reqs = served
    head = Head(CFG.dim, 11, hidden=8, side="cancel", frame_shape=(1, 1024)).eval()
    table = {**table, "modulation": TaskPlan("modulation", CLASSES["modulation"], {2: head})}
    rows = [r for r in reqs if r.task == "modulation"][:8]
    loud = Request(rows[0].node_id, "modulation", rows[0].frame * np.float32(1e37), 999, "cell0", rows[0].t_node_ns,
                   rows[0].t_arrival, rows[0].deadline)
    got = decisions(EarlyExitEngine(encoder, Metrics()), table, rows + [loud], 32)
    assert len(got) == len(rows) + 1
    assert got[("modulation", 999)].class_index == got[("modulation", rows[0].seq)].class_index
    assert got[("modulation", 999)].confidence == pytest.approx(got[("modulation", rows[0].seq)].confidence, abs=1e-3)


def test_a_dynamic_plan_pays_for_side_features_once(served):
    encoder, table, reqs = served
    heads = {k: Head(CFG.dim, 11, hidden=8, side="lines", frame_shape=(1, 1024)).eval() for k in (1, 2, 3)}
    plan = TaskPlan("modulation", CLASSES["modulation"], heads, Policy("confidence", 2.0))  # never sure: reads all
    got = decisions(EarlyExitEngine(encoder, Metrics()), {"modulation": plan}, [r for r in reqs if r.task == "modulation"], 32)
    per_read = heads[1].flops(65) - heads[1].side_flops
    want = (encoder_flops(encoder, (1, 1024), 3) + 3 * per_read + heads[1].side_flops) / 1e9
    assert all(d.exit == 3 and d.gflops == pytest.approx(want, rel=1e-9) for d in got.values())


def test_a_dynamic_plan_whose_heads_read_different_side_features_computes_each_once(served):
    encoder, _, reqs = served
    heads = {1: Head(CFG.dim, 11, hidden=8, side="lines", frame_shape=(1, 1024)).eval(),
             2: Head(CFG.dim, 11, hidden=8).eval(),
             3: Head(CFG.dim, 11, hidden=8, side="hand", frame_shape=(1, 1024)).eval()}
    plan = TaskPlan("modulation", CLASSES["modulation"], heads, Policy("confidence", 2.0))
    assert set(plan.sides) == {"lines", "hand"} and plan.side_flops == heads[1].side_flops + heads[3].side_flops
    rows = [r for r in reqs if r.task == "modulation"]
    got = decisions(EarlyExitEngine(encoder, Metrics()), {"modulation": plan}, rows, 32)
    beside = decisions(EarlyExitEngine(encoder, Metrics(), side_thread=True), {"modulation": plan}, rows, 32)
    assert {k: (d.class_index, d.confidence, d.exit) for k, d in beside.items()} == \
        {k: (d.class_index, d.confidence, d.exit) for k, d in got.items()}
    want = (encoder_flops(encoder, (1, 1024), 3) + plan.side_flops
            + sum(h.flops(65) - h.side_flops for h in heads.values())) / 1e9
    assert all(d.gflops == pytest.approx(want, rel=1e-9) for d in got.values())
    with torch.inference_mode():  # the last exit decides (the policy is never sure): as its head offline
        frames = torch.from_numpy(np.stack([r.frame for r in rows]))
        labels = read_head(heads[3], encoder(frames, [3])[3], frames).argmax(-1).tolist()
    assert [got[("modulation", r.seq)].class_index for r in rows] == labels


def test_training_with_side_auto_keeps_side_heads_only_where_validation_prefers_them(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "encoder.safetensors"
    save_encoder(path, Encoder(CFG))
    settings = TrainSettings(train=256, val=128, test=64, epochs=3, chunk=64, hidden=16, side="auto")
    manifest = train_all(load_encoder(path), {"file": str(path), "sha256": sha256_file(path)}, ["beam", "los"],
                         settings, tmp_path / "heads", "xapp heads train (test)", progress=False, log=lambda s: None)
    doc = read_manifest(manifest)
    beam = task_heads(doc, "beam", manifest)
    for h in beam:
        assert set(h["by_pooling"]) == {"mean", "mean+beams"}
        assert h["val_accuracy"] == max(s["val_accuracy"] for s in h["by_pooling"].values())
        head, _ = load_head(h["path"], h["sha256"])
        assert head.side == h.get("side")
    # a random trunk knows nothing: the DFT beams must win somewhere, with their FLOPs in the manifest
    chosen = [h for h in beam if h.get("side") == "beams"]
    assert chosen and all(h["head_gflops"] > side_flops("beams", (16, 64)) / 1e9 for h in chosen)
    assert all("side" not in h and "by_pooling" not in h for h in task_heads(doc, "los", manifest))


def test_a_side_candidate_that_an_exit_cannot_afford_is_not_trained_and_the_exit_keeps_its_own_head(tmp_path):
    """The impairment statistics cost more than 2 % of this small trunk at every exit: the trainer does
    not train heads reading them (before, it trained them, kept the best and then refused to write it)."""
    torch.manual_seed(0)
    path = tmp_path / "encoder.safetensors"
    save_encoder(path, Encoder(CFG))
    settings = TrainSettings(train=128, val=64, test=64, epochs=2, chunk=64, hidden=16, side="auto")
    assert settings.sides("fingerprint") == (None, "impairments")
    manifest = train_all(load_encoder(path), {"file": str(path), "sha256": sha256_file(path)}, ["fingerprint"],
                         settings, tmp_path / "heads", "xapp heads train (test)", progress=False, log=lambda s: None)
    heads = task_heads(read_manifest(manifest), "fingerprint", manifest)
    assert len(heads) == CFG.depth and all("side" not in h and "by_pooling" not in h for h in heads)
    assert all(side_flops("impairments", (1, 1024)) > 0.02 * h["encoder_gflops"] * 1e9 for h in heads)


def test_the_hand_features_match_the_numpy_reference_of_the_baselines():
    from xapp.train.baselines.features import features

    x = generate("interference", 128, seed=6).x
    got, want = side_features("hand", torch.from_numpy(x)).numpy(), features(x)
    assert got.shape == want.shape == (128, 27)
    # float32 against float64: the peak-bin track and instantaneous frequency flip on near-ties or near +-pi
    # in a few frames; every feature matches on all but those
    close = np.abs(got - want) < 2e-3
    assert close.mean(axis=0).min() > 0.97 and close.all(axis=1).mean() > 0.95
    scaled = side_features("hand", torch.from_numpy(x * 7.0)).numpy()  # scaled to unit power first
    assert (np.abs(scaled - got) < 2e-3).all(axis=1).mean() > 0.95


def test_offline_scoring_paths_read_side_heads(served):
    """`xapp eval` and the report's comparison score side heads as the engine serves them."""
    from xapp.train.calibration import exit_predictions
    from xapp.train.evaluate import evaluate_exits

    encoder, table, reqs = served
    head = table["modulation"].heads[2]
    x = np.stack([r.frame for r in reqs if r.task == "modulation"])
    with torch.inference_mode():
        frames = torch.from_numpy(x)
        want = read_head(head, encoder(frames, [2])[2], frames).argmax(-1).numpy()
    np.testing.assert_array_equal(exit_predictions(encoder, {2: head}, x, chunk=16)[2].label, want)
    row, = evaluate_exits(encoder, {2: head}, x, want, chunk=16)
    assert row["accuracy"] == 1.0 and row["gflops"] == pytest.approx((encoder_flops(encoder, (1, 1024), 2) + head.flops(65)) / 1e9)


@pytest.mark.parametrize("kind, shape", [("lines", (1, 1024)), ("hand", (1, 1024)), ("symbols", (1, 1024)),
                                         ("cancel", (1, 1024)), ("impairments", (1, 1024)), ("spatial", (16, 64)),
                                         ("beams", (16, 64))])
def test_loud_and_quiet_frames_get_the_features_of_the_same_frames_at_unit_power(kind, shape):
    """E2 passes any finite sample. A frame 1e-20 to 7.5e37 times unit power gets the features it gets at
    unit power; before, x^8 overflowed (the features went NaN, and the receiver indexed out of range,
    which failed and shed the whole batch) or underflowed."""
    frames = torch.from_numpy(generate("beam" if shape[0] > 1 else "modulation", 4, seed=9, snr_db=20.0).x)
    want = side_features(kind, frames)
    for scale in (1e-20, 1e-5, 1e3, 1e10, 7.5e37):  # rounding moves the rate line's strength (a ratio to a near-empty flank) by ~1 %
        torch.testing.assert_close(side_features(kind, frames * scale), want, atol=1e-3, rtol=2e-2)


@pytest.mark.parametrize("kind, shape", [("lines", (1, 1024)), ("hand", (1, 1024)), ("symbols", (1, 1024)),
                                         ("cancel", (1, 1024)), ("impairments", (1, 1024)), ("spatial", (16, 64)),
                                         ("beams", (16, 64))])
def test_degenerate_frames_give_finite_features_and_leave_the_rest_of_the_batch_alone(kind, shape):
    """All-zero, constant and vanishingly weak frames pass the E2 checks (finite samples); their side
    features stay finite, and the other rows of the batch get the features they get alone."""
    normal = torch.from_numpy(random_frames(4, shape, 8))
    odd = torch.zeros((3, *shape), dtype=torch.complex64)
    odd[1] = 1
    odd[2, :, ::2] = 1e-30
    mixed = side_features(kind, torch.cat([normal, odd]))
    assert torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed[:4], side_features(kind, normal))


def test_side_features_are_staged_by_the_exit_that_first_reads_them_and_the_receiver_is_shared():
    """Stages in exit order; `symbols` and `cancel` (both read the blind receiver) in one stage, the
    earliest either is read at, even across tasks; a dynamic plan's kinds each at its first exit."""
    def plan(heads: dict, policy: Policy = Policy()) -> TaskPlan:
        return TaskPlan("task", tuple(range(16)), heads, policy)

    def head(side: str | None) -> Head:
        return Head(CFG.dim, 16, hidden=8, side=side, frame_shape=(16, 64) if side == "beams" else (1, 1024)).eval()

    plans = [plan({3: head("symbols")}), plan({4: head("cancel")}), plan({1: head("beams")}),
             plan({1: head("lines"), 2: head(None), 5: head("hand")}, Policy("confidence", 0.9))]
    assert side_stages(plans) == [{2: ["beams"], 3: ["lines"]}, {0: ["symbols"], 1: ["cancel"]}, {3: ["hand"]}]
    assert side_stages([plan({1: head(None)})]) == []


def test_the_symbol_timing_of_a_frame_without_a_rate_line_does_not_hang_on_rounding():
    """Where no symbol-rate line lies in the range the occupied width allows, the timing phase is the
    envelope's at the clamped rate, not the angle of a bin that is zero but for rounding: scaling the
    frame (which changes only the rounding) leaves it where it was. Before, 38 of these 64 noise frames
    moved by up to pi, and 5 % of modulation decisions hung on the arithmetic's rounding."""
    g = torch.Generator().manual_seed(3)
    x = torch.complex(torch.randn(64, 1024, generator=g), torch.randn(64, 1024, generator=g))
    narrow = torch.full((64,), 0.01)  # no rate in range: the search finds no line
    with torch.inference_mode():
        _, _, phase = _symbol_rate(x, narrow)
        _, _, scaled = _symbol_rate(x * 1.001, narrow)
    moved = torch.remainder(phase - scaled + math.pi, 2 * math.pi) - math.pi
    assert moved.abs().max() < 1e-3
