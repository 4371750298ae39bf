"""The side features' CPU kernels (xapp.model.side_cpu) against the torch reference they mirror
(xapp.model.side with COMPILED off): the same features on generated frames of every kind, bit for bit
where the arithmetic is the same, and within the rounding elsewhere."""

import math

import numpy as np
import pytest
import torch

from xapp.data import generate
from xapp.model import side, side_cpu


def features(kind: str, x: torch.Tensor, compiled: bool, monkeypatch) -> torch.Tensor:
    monkeypatch.setattr(side, "COMPILED", compiled)
    with torch.inference_mode():
        return side.side_features(kind, x)


@pytest.mark.parametrize("kind", ["lines", "hand", "symbols", "cancel"])
@pytest.mark.parametrize("task", ["modulation", "interference"])
def test_the_kernels_give_the_torch_features(kind, task, monkeypatch):
    """On 200 frames: the median feature is the same to 1e-6, and at most 5 % of frames have a feature
    that differs by more than 0.02. Those are the frames where the reference itself hangs on its
    float32 rounding: a symbol on a histogram bin's edge or a grid decision's boundary, a symbol-rate
    line whose flanks are rounding noise (docs/research.md, "Session 19")."""
    x = torch.from_numpy(generate(task, 200, 5).x)
    reference, compiled = features(kind, x, False, monkeypatch), features(kind, x, True, monkeypatch)
    assert compiled.shape == reference.shape and compiled.dtype == reference.dtype
    difference = (compiled - reference).abs()
    assert difference.median() < 1e-6
    assert (difference > 0.02).any(dim=1).float().mean() <= 0.05


def test_the_moving_mean_is_torch_s_bit_for_bit():
    """A spectrum spanning decades, where torch's float32 running sum leaves the floor's averages to
    rounding: the kernel keeps exactly those values (the heads were trained on them)."""
    rng = np.random.default_rng(0)
    spectrum = (10.0 ** rng.uniform(-6, 6, (8, 2049))).astype(np.float32)
    reference = side._moving_mean(torch.from_numpy(spectrum), 17).numpy()
    compiled = np.empty_like(spectrum)
    for row, out in zip(spectrum, compiled):
        side_cpu._moving_mean(row, 8, out)
    np.testing.assert_array_equal(compiled, reference)


def test_unwrapping_peak_tracks_with_steps_of_exactly_pi_is_torch_s_bit_for_bit():
    """Peak bins are multiples of one angle, so steps of exactly pi are common; float32 decides them."""
    rng = np.random.default_rng(1)
    peaks = rng.integers(0, 64, (50, 12))
    peaks[:, 1::2] = (peaks[:, ::2] + 32) % 64  # every other step is half the band: pi
    reference = side._unwrap(torch.from_numpy(peaks).float() * (2 * math.pi / 64)).numpy()
    compiled = np.empty((50, 12), dtype=np.float32)
    for row, out in zip(peaks, compiled):
        side_cpu._unwrap_float32(row, np.float32(2 * math.pi / 64), out)
    np.testing.assert_array_equal(compiled, reference)


def test_the_canceller_decides_a_clean_frame_s_symbols_as_torch_does(monkeypatch):
    """Clean QAM16 frames at high SNR (no symbol near a decision boundary): every decision, gain and
    impulse weight the same to float32 rounding."""
    data = generate("interference", 16, 3, snr_db=(30.0, 30.0))
    x = side._tamed(torch.from_numpy(data.x)).reshape(16, -1)
    with torch.inference_mode():
        received = side._receive(x, side._power_spectra(x)[:, 0])
        weights = {}
        for compiled in (False, True):
            monkeypatch.setattr(side, "COMPILED", compiled)
            weights[compiled] = side._cancel_weights(received.symbols, received.valid)
    scale = weights[False].abs().max()
    assert (weights[True] - weights[False]).abs().max() < 1e-4 * scale


def test_degenerate_frames_pass_through_the_kernels():
    """Silent, constant and single-sample frames: finite features, the rest of the batch unchanged."""
    x = torch.from_numpy(generate("modulation", 4, 8).x)
    odd = torch.zeros(3, 1, 1024, dtype=torch.complex64)
    odd[1] = 1.0
    odd[2, 0, 7] = 1.0
    with torch.inference_mode():
        for kind in ("symbols", "cancel", "hand"):
            alone = side.side_features(kind, x)
            mixed = side.side_features(kind, torch.cat([odd, x]))
            assert torch.isfinite(mixed).all()
            torch.testing.assert_close(mixed[3:], alone)


def test_the_branchless_angle_and_turn_match_libm():
    """`_atan2` and `_cis` replace libm calls so that loops of them vectorise: 1e-10 and 1e-13 of
    math.atan2 and cos/sin, and the signed zeros pick 0 or pi as libm's do."""
    rng = np.random.default_rng(2)
    for y, x in [*rng.standard_normal((20000, 2)), *(rng.standard_normal((200, 2)) * 1e-30),
                 (0.0, 0.0), (-0.0, 0.0), (0.0, -0.0), (-0.0, -0.0), (0.0, -1.0), (-0.0, -1.0), (1.0, 1.0)]:
        assert abs(side_cpu._atan2(y, x) - math.atan2(y, x)) < 1e-10, (y, x)
    for angle in [*rng.uniform(-500, 500, 20000), 0.0, math.pi / 4, -math.pi / 2, math.pi]:
        assert abs(side_cpu._cis(angle) - complex(math.cos(angle), math.sin(angle))) < 1e-13, angle


def test_without_numba_the_torch_path_serves(monkeypatch, caplog):
    """An environment that cannot install numba (a GPU image carrying few wheels) still gets side
    features: the torch reference serves, with one warning."""
    import sys

    x = torch.from_numpy(generate("modulation", 8, 4).x)
    reference = features("symbols", x, False, monkeypatch)
    import xapp.model

    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    monkeypatch.delitem(sys.modules, "xapp.model.side_cpu")
    monkeypatch.delattr(xapp.model, "side_cpu")
    side._kernels.cache_clear()
    try:
        served = features("symbols", x, True, monkeypatch)
        assert side._kernels() is None and "need numba" in caplog.text
    finally:
        monkeypatch.undo()
        side._kernels.cache_clear()
    torch.testing.assert_close(served, reference, rtol=0, atol=0)
    assert side._kernels() is not None  # numba back: the kernels again
