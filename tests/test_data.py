"""The task generators: contract shapes, and physics that a wrong generator would get wrong."""

from __future__ import annotations

import numpy as np
import pytest

from xapp.data import PRETRAIN_TASKS, TASKS, DataError, generate, generate_parts, pretrain_mixture
from xapp.data.tasks import CHUNK
from xapp.data.fingerprint import HARDWARE

EXPECTED_CLASSES = {
    "modulation": ("8PSK", "AM-DSB", "AM-SSB", "BPSK", "CPFSK", "GFSK", "PAM4", "QAM16", "QAM64", "QPSK", "WBFM"),
    "interference": ("none", "tone", "chirp", "fsk_hopper", "ofdm", "oqpsk"),
    "beam": tuple(f"beam{b:02d}" for b in range(16)),
    "los": ("LOS", "NLOS"),
    "fingerprint": tuple(f"emitter{i}" for i in range(8)),
}
SHAPES = {"modulation": (1, 1024), "interference": (1, 1024), "beam": (16, 64), "los": (16, 64), "fingerprint": (1, 1024)}


def frame_power(x: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(x.astype(np.complex128)) ** 2, axis=(1, 2))


@pytest.mark.parametrize("task", list(EXPECTED_CLASSES))
def test_contract(task):
    d = generate(task, 300, seed=1)
    assert TASKS[task].classes == EXPECTED_CLASSES[task] == d.classes
    assert TASKS[task].frame_shape == SHAPES[task]
    assert d.x.dtype == np.complex64 and d.x.shape == (300, *SHAPES[task])
    assert d.y.dtype == np.int64 and d.y.shape == (300,)
    assert d.y.min() >= 0 and d.y.max() < len(d.classes)
    assert d.snr_db.dtype == np.float32 and d.snr_db.shape == (300,)
    np.testing.assert_allclose(frame_power(d.x), 1.0, rtol=1e-4)
    for key, value in d.meta.items():
        assert len(value) == 300, key
    assert np.all(np.isfinite(d.x))


@pytest.mark.parametrize("task", list(EXPECTED_CLASSES))
def test_same_seed_same_bytes(task):
    n = 600  # crosses the 512-frame chunk boundary
    a, b, c = generate(task, n, seed=7), generate(task, n, seed=7), generate(task, n, seed=8)
    assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes()
    assert a.snr_db.tobytes() == b.snr_db.tobytes()
    assert a.x.tobytes() != c.x.tobytes()


@pytest.mark.parametrize("task", ["modulation", "fingerprint", "beam", "los"])
def test_measured_snr_matches_label(task):
    d = generate(task, 800, seed=2, clean=True)
    linear = d.meta.get("adc_bits", np.zeros(800)) == 0  # quantised frames add quantisation noise
    assert linear.sum() > 400
    clean, x = d.meta["clean"][linear], d.x[linear]
    measured = 10 * np.log10(frame_power(clean) / frame_power(x - clean))
    error = measured - d.snr_db[linear]
    assert abs(error.mean()) < 0.05
    # 1024 noise samples per frame: the estimate itself has ~0.14 dB spread
    assert np.quantile(np.abs(error), 0.99) < 0.5


def test_interference_snr_and_inr_match_labels():
    d = generate("interference", 800, seed=3, clean=True)
    linear = d.meta["adc_bits"] == 0
    d.x, d.snr_db, d.y = d.x[linear], d.snr_db[linear], d.y[linear]
    d.meta = {k: v[linear] for k, v in d.meta.items()}
    noise = d.x - d.meta["clean"]
    desired = d.meta["clean"] - d.meta["interferer"]
    snr = 10 * np.log10(frame_power(desired) / frame_power(noise))
    assert np.quantile(np.abs(snr - d.snr_db), 0.99) < 0.5
    on = d.y != d.classes.index("none")
    inr = 10 * np.log10(frame_power(d.meta["interferer"][on]) / d.meta["int_duty"][on] / frame_power(noise[on]))
    assert np.quantile(np.abs(inr - d.meta["inr_db"][on]), 0.99) < 0.5
    assert np.all(d.meta["interferer"][~on] == 0) and np.all(np.isnan(d.meta["inr_db"][~on]))


def test_snr_blind_estimate_on_constant_envelope():
    """M2M4 estimator, which knows nothing of the generator: valid for constant-modulus signals."""
    d = generate("modulation", 400, seed=4, classes=["CPFSK"], impairments=False, snr_db=(0, 15))
    x = d.x[:, 0].astype(np.complex128)
    m2 = np.mean(np.abs(x) ** 2, axis=1)
    m4 = np.mean(np.abs(x) ** 4, axis=1)
    s = np.sqrt(np.maximum(2 * m2**2 - m4, 1e-12))
    estimate = 10 * np.log10(s / (m2 - s))
    assert abs(np.mean(estimate - d.snr_db)) < 0.3
    assert np.median(np.abs(estimate - d.snr_db)) < 0.5


def clean_class(name: str, n: int = 60, **where: bool) -> np.ndarray:
    """Noiseless frames of one class; `where` keeps frames whose boolean waveform parameter matches."""
    d = generate("modulation", n, seed=5, classes=[name], impairments=False, snr_db=40)
    keep = np.ones(n, bool)
    for key, value in where.items():
        keep &= d.meta[key].astype(bool) == value
    return d.x[keep, 0]


def envelope_spread(x: np.ndarray) -> float:
    a = np.abs(x)
    return float(np.mean(a.std(axis=1) / a.mean(axis=1)))


def test_fsk_and_fm_have_constant_envelope_linear_mods_do_not():
    for name in ("CPFSK", "GFSK", "WBFM"):
        assert envelope_spread(clean_class(name)) < 0.03, name
    for name in ("QPSK", "QAM16", "8PSK", "AM-DSB"):
        assert envelope_spread(clean_class(name)) > 0.15, name


def spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.fftfreq(x.shape[1]), np.mean(np.abs(np.fft.fft(x, axis=1)) ** 2, axis=0)


def test_am_dsb_with_and_without_carrier_has_symmetric_sidebands():
    f, p = spectrum(clean_class("AM-DSB", 200, am_carrier=True))
    assert p[0] / p.sum() > 0.3  # the carrier (at DC before any offset) holds much of the power
    upper, lower = p[(f > 0.001) & (f < 0.1)].sum(), p[(f < -0.001) & (f > -0.1)].sum()
    assert 0.7 < upper / lower < 1.4
    f, p = spectrum(clean_class("AM-DSB", 200, am_carrier=False))
    assert p[0] / p.sum() < 0.05
    for name in ("BPSK", "QPSK"):
        f, p = spectrum(clean_class(name))
        assert p[0] / p.sum() < 0.05, name


def test_am_ssb_is_one_sided_either_side():
    f, p = spectrum(clean_class("AM-SSB", 200, ssb_lower=False))
    assert p[f < -0.001].sum() / p.sum() < 0.02
    f, p = spectrum(clean_class("AM-SSB", 200, ssb_lower=True))
    assert p[f > 0.001].sum() / p.sum() < 0.02
    f, p = spectrum(clean_class("AM-DSB"))
    assert p[f < -0.001].sum() / p[f > 0.001].sum() > 0.7


def test_pam4_is_real_valued_and_bpsk_too():
    for name in ("PAM4", "BPSK"):
        x = clean_class(name)
        assert np.mean(x.imag**2) / np.mean(np.abs(x) ** 2) < 0.01, name
    x = clean_class("QPSK")
    assert np.mean(x.imag**2) / np.mean(np.abs(x) ** 2) > 0.3


def test_impairments_rotate_and_fade():
    """With impairments the carrier offset and fading make frames of a real-valued class complex."""
    x = generate("modulation", 60, seed=5, classes=["BPSK"], snr_db=40).x[:, 0]
    assert np.mean(x.imag**2) / np.mean(np.abs(x) ** 2) > 0.1


def instantaneous_frequency(x: np.ndarray) -> np.ndarray:
    return np.angle(x[:, 1:] * np.conj(x[:, :-1])) / (2 * np.pi)


def test_tone_and_chirp_instantaneous_frequency():
    d = generate("interference", 300, seed=6, classes=["tone", "chirp"], impairments=False, snr_db=20, inr_db=45)
    always_on = d.meta["int_duty"] == 1  # bursts leave part of the frame to the desired signal
    assert always_on.sum() > 60
    d.x, d.y, d.meta = d.x[always_on], d.y[always_on], {k: v[always_on] for k, v in d.meta.items()}
    inst = instantaneous_frequency(d.x[:, 0])
    tone = d.y == d.classes.index("tone")
    np.testing.assert_allclose(np.median(inst[tone], axis=1), d.meta["int_freq"][tone], atol=0.005)
    chirp = ~tone
    lag = 32  # smooth the noisy per-sample estimate over 32 samples, then take the slope across 32
    smooth = np.cumsum(inst[chirp], axis=1)
    smooth = (smooth[:, lag:] - smooth[:, :-lag]) / lag
    slope = np.median((smooth[:, lag:] - smooth[:, :-lag]) / lag, axis=1)  # sawtooth wraps: a minority
    np.testing.assert_allclose(slope, d.meta["int_rate"][chirp], rtol=0.15, atol=1e-4)
    low = d.meta["int_freq"][chirp] - d.meta["int_bandwidth"][chirp] / 2
    high = d.meta["int_freq"][chirp] + d.meta["int_bandwidth"][chirp] / 2
    inside = (inst[chirp] > low[:, None] - 0.02) & (inst[chirp] < high[:, None] + 0.02)
    assert inside.mean() > 0.95


def test_interferer_occupies_its_band():
    d = generate("interference", 300, seed=9, classes=["ofdm", "oqpsk", "fsk_hopper"], snr_db=30, inr_db=40, clean=True)
    i = d.meta["interferer"][:, 0]
    f = np.fft.fftfreq(i.shape[1])
    p = np.abs(np.fft.fft(i, axis=1)) ** 2
    ofdm = d.y == d.classes.index("ofdm")
    near = np.abs(f[None, :] - d.meta["int_freq"][ofdm, None]) <= d.meta["int_bandwidth"][ofdm, None] / 2 + 0.02
    assert np.median((p[ofdm] * near).sum(1) / p[ofdm].sum(1)) > 0.95


def dft_beam_energy(y: np.ndarray) -> np.ndarray:
    """Written out from the definition: beam b steers w_b[m] = exp(j*pi*m*u_b)/4, u_b = (b - 8) / 8."""
    m = np.arange(16)
    energy = np.empty((len(y), 16))
    for b in range(16):
        w = np.exp(1j * np.pi * m * (b - 8) / 8) / 4
        energy[:, b] = np.sum(np.abs(np.einsum("a,nas->ns", w.conj(), y)) ** 2, axis=1)
    return energy


def test_beam_label_is_the_best_dft_beam():
    d = generate("beam", 600, seed=10, clean=True)
    assert np.array_equal(d.y, np.argmax(dft_beam_energy(d.meta["clean"]), axis=1))
    high = d.snr_db > 10
    assert np.mean(np.argmax(dft_beam_energy(d.x[high]), axis=1) == d.y[high]) > 0.9
    assert np.bincount(d.y, minlength=16).min() > 600 / 16 / 2  # every beam gets used


def test_strong_line_of_sight_points_the_beam_at_its_direction():
    d = generate("beam", 4000, seed=11)
    strong = d.meta["rician_k_db"] > 10
    nearest = np.round(d.meta["u_los"][strong] * 8).astype(int) % 16  # u = (b - 8) / 8, wrapping at u = 1
    expected = (nearest + 8) % 16
    assert strong.sum() > 100 and np.mean(expected == d.y[strong]) > 0.9


def test_los_frames_are_more_concentrated_than_nlos():
    d = generate("los", 600, seed=12, snr_db=20)
    energy = dft_beam_energy(d.x)
    concentration = energy.max(1) / energy.sum(1)
    los = d.y == d.classes.index("LOS")
    assert concentration[los].mean() > concentration[~los].mean() + 0.05
    assert np.all(np.isnan(d.meta["u_los"][~los])) and not np.any(np.isnan(d.meta["u_los"][los]))


def fingerprint_features(x: np.ndarray) -> np.ndarray:
    """Hand-made impairment features, robust to carrier offset and phase: IQ improperness, DC, PA
    compression (amplitude moments, peak), phase jitter of the 4th power."""
    x = x[:, 0].astype(np.complex128)
    n = x.shape[1]
    fourth = np.abs(np.fft.fft(x**4, 8 * n, axis=1))
    cfo = np.fft.fftfreq(8 * n)[np.argmax(fourth, axis=1)] / 4
    x = x * np.exp(-2j * np.pi * cfo[:, None] * np.arange(n))
    p = np.mean(np.abs(x) ** 2, axis=1)
    a = np.abs(x)
    z = x**4 / np.maximum(np.abs(x) ** 4, 1e-12)
    jitter = np.std(np.unwrap(np.angle(z.reshape(len(z), 16, -1).mean(2)), axis=1), axis=1)
    return np.stack([
        np.abs(np.mean(x**2, axis=1)) / p,
        np.abs(np.mean(x, axis=1)) / np.sqrt(p),
        np.mean(a**4, axis=1) / p**2,
        np.mean(a**6, axis=1) / p**3,
        a.max(axis=1) / np.sqrt(p),
        jitter,
    ], axis=1)


def nearest_centroid_accuracy(hardware: bool) -> float:
    train = generate("fingerprint", 1600, seed=13, hardware=hardware, snr_db=(15, 30))
    test = generate("fingerprint", 800, seed=14, hardware=hardware, snr_db=(15, 30))
    f, g = fingerprint_features(train.x), fingerprint_features(test.x)
    mu, sd = f.mean(0), f.std(0) + 1e-12
    f, g = (f - mu) / sd, (g - mu) / sd
    means = np.stack([f[train.y == c].mean(0) for c in range(8)])
    cov = sum(np.cov(f[train.y == c].T) for c in range(8)) / 8 + 1e-6 * np.eye(f.shape[1])
    inv = np.linalg.inv(cov)  # linear discriminant: shared covariance
    score = g @ inv @ means.T - 0.5 * np.einsum("cf,fg,cg->c", means, inv, means)
    return float(np.mean(np.argmax(score, axis=1) == test.y))


def test_emitters_separable_by_hardware_only():
    assert nearest_centroid_accuracy(hardware=True) > 0.5  # chance is 0.125
    assert nearest_centroid_accuracy(hardware=False) < 0.25


def test_emitter_hardware_is_fixed_across_dataset_seeds():
    a = generate("fingerprint", 16, seed=1)
    b = generate("fingerprint", 16, seed=2)
    assert a.classes == b.classes
    assert len(np.unique(HARDWARE.iq_gain)) == 8 and len(np.unique(HARDWARE.saturation)) == 8


@pytest.mark.parametrize(("task", "samples"), [("modulation", 128), ("interference", 256), ("beam", 32), ("fingerprint", 128)])
def test_other_frame_lengths(task, samples):
    d = generate(task, 40, seed=0, samples=samples)
    assert d.x.shape == (40, SHAPES[task][0], samples)
    np.testing.assert_allclose(frame_power(d.x), 1.0, rtol=1e-4)


def test_pretrain_mixture_is_unlabelled_in_distribution_and_deterministic():
    assert set(PRETRAIN_TASKS) == {"modulation", "interference", "beam"}
    mix = pretrain_mixture(256, seed=3)
    assert set(mix) <= {(1, 1024), (16, 64)} and sum(len(v) for v in mix.values()) == 256
    for shape, x in mix.items():
        assert x.dtype == np.complex64 and x.shape[1:] == shape
        np.testing.assert_allclose(frame_power(x), 1.0, rtol=1e-4)
    again = pretrain_mixture(256, seed=3)
    assert all(again[k].tobytes() == v.tobytes() for k, v in mix.items())


@pytest.mark.parametrize("task", ["modulation", "beam"])
def test_a_dataset_made_in_parts_is_the_same_bytes_as_made_whole(task):
    """Head training streams its splits part by part (labels, SNRs, frames and metadata alike); beam's
    labels come from the channel each part draws."""
    whole = generate(task, 2 * CHUNK + 100, seed=12)
    parts = list(generate_parts(task, 2 * CHUNK + 100, seed=12, part=CHUNK))
    assert [len(p.y) for p in parts] == [CHUNK, CHUNK, 100]
    for field in ("x", "y", "snr_db"):
        assert np.concatenate([getattr(p, field) for p in parts]).tobytes() == getattr(whole, field).tobytes()
    for key, value in whole.meta.items():
        assert np.concatenate([p.meta[key] for p in parts]).tobytes() == value.tobytes(), key


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: generate("radar", 10, 0), "unknown task 'radar'"),
        (lambda: generate("modulation", 0, 0), "n must be a positive integer"),
        (lambda: generate("modulation", 2.5, 0), "n must be a positive integer"),
        (lambda: generate("modulation", 10, -1), "seed must be a non-negative integer"),
        (lambda: generate("modulation", 10, 0, samples=100), "samples must be a multiple of 16"),
        (lambda: generate("modulation", 10, 0, samples=64), "in [128, 65536]"),
        (lambda: generate("modulation", 10, 0, snr=3), "unknown option(s) snr"),
        (lambda: generate("modulation", 10, 0, snr_db=(10, 0)), "low <= high"),
        (lambda: generate("modulation", 10, 0, snr_db="loud"), "snr_db must be a number"),
        (lambda: generate("modulation", 10, 0, classes=["FM"]), "unknown classes ['FM']"),
        (lambda: generate("modulation", 10, 0, impairments="no"), "impairments must be true or false"),
        (lambda: generate("beam", 10, 0, classes=["beam01"]), "computed from the channel"),
        (lambda: generate("beam", 10, 0, hardware=False), "unknown option(s) hardware"),
        (lambda: pretrain_mixture(0, 0), "n must be a positive integer"),
        (lambda: next(generate_parts("modulation", 10, 0, part=CHUNK + 1)), "multiple of 512 frames"),
        (lambda: next(generate_parts("radar", 10, 0, part=CHUNK)), "unknown task 'radar'"),
    ],
)
def test_bad_arguments_are_rejected_clearly(call, message):
    with pytest.raises(DataError) as err:
        call()
    assert message in str(err.value)


# Domain randomisation: estimated from the frames themselves, the parameters span their stated ranges.

def test_symbol_rate_estimated_from_frames_spans_2_to_16_samples_per_symbol():
    from xapp.data.modulation import SPS

    d = generate("modulation", 400, seed=21, classes=["QPSK"], impairments=False, snr_db=40)
    x = d.x[:, 0].astype(np.complex128)
    envelope = np.abs(x) ** 2
    n = x.shape[1]
    lines = np.abs(np.fft.rfft(envelope - envelope.mean(1, keepdims=True), 8 * n, axis=1))
    f = np.fft.rfftfreq(8 * n)
    band = (f > 1 / 17) & (f < 0.5)
    estimate = 1 / f[band][np.argmax(lines[:, band], axis=1)]  # the symbol-rate line of |x|^2
    clear = (d.meta["pulse"] == 0) & (d.meta["rolloff"] >= 0.25)  # RRC with a visible line
    assert clear.sum() > 50
    assert np.mean(np.abs(estimate[clear] / d.meta["sps"][clear] - 1) < 0.02) > 0.9
    assert estimate[clear].min() < SPS[0] * 1.25 and estimate[clear].max() > SPS[1] * 0.8


def occupied_bandwidth(x: np.ndarray, share: float = 0.99) -> np.ndarray:
    p = np.abs(np.fft.fftshift(np.fft.fft(x, axis=1), axes=1)) ** 2
    c = np.cumsum(p, 1) / p.sum(1, keepdims=True)
    f = np.fft.fftshift(np.fft.fftfreq(x.shape[1]))
    tail = (1 - share) / 2
    return f[np.argmax(c > 1 - tail, axis=1)] - f[np.argmax(c > tail, axis=1)]


def test_occupied_bandwidth_spans_narrow_to_most_of_the_band():
    d = generate("modulation", 400, seed=22, classes=["QAM16", "8PSK"], impairments=False, snr_db=40)
    nyquist = d.meta["pulse"] <= 1  # RRC/RC: 99 % bandwidth close to (1 + roll-off) / sps
    measured = occupied_bandwidth(d.x[nyquist, 0])
    assert np.corrcoef(measured, d.meta["bandwidth"][nyquist])[0, 1] > 0.95
    assert measured.min() < 0.1 and measured.max() > 0.5


def test_carrier_offset_reaches_a_sizeable_fraction_of_the_band():
    d = generate("modulation", 400, seed=23, classes=["QPSK", "GFSK"], snr_db=30)
    p = np.abs(np.fft.fft(d.x[:, 0], axis=1)) ** 2
    centroid = (p * np.fft.fftfreq(d.x.shape[2])).sum(1) / p.sum(1)  # DC offsets pull it a little
    assert np.corrcoef(centroid, d.meta["cfo"])[0, 1] > 0.95
    assert np.abs(centroid).max() > 0.15 and np.mean(np.abs(d.meta["cfo"]) < 0.01) > 0.3


def test_receiver_impairments_are_visible_in_the_frames():
    d = generate("modulation", 600, seed=24, classes=["QPSK"], snr_db=30)
    quantised = d.meta["adc_bits"] > 0
    levels = np.array([len(np.unique(x.real)) for x in d.x[:, 0]])
    assert np.all(levels[quantised] <= 2.0 ** d.meta["adc_bits"][quantised])
    assert np.all(levels[~quantised] > 512)
    dc = np.abs(d.x[:, 0].mean(1))  # a random QPSK frame's own mean is ~0.05 at these rates
    assert np.median(dc[d.meta["dc_level"] > 0.1]) > 2 * np.median(dc[d.meta["dc_level"] == 0])
