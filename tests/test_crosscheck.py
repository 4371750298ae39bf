"""The independent cross-check source: the contract, determinism, the beam label convention, and
that it is written apart from xapp.data's generators."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from xapp.cli import main
from xapp.crosscheck import TASKS, generate
from xapp.crosscheck.array import ANTENNAS, best_beam, steering
from xapp.data import DataError
from xapp.data import TASKS as CONTRACT
from xapp.data.io import load_npz

PACKAGE = Path(__file__).resolve().parents[1] / "xapp" / "crosscheck"


@pytest.mark.parametrize("task", TASKS)
def test_contract_shapes_power_labels(task):
    d = generate(task, 48, seed=2)
    assert d.classes == CONTRACT[task].classes
    assert d.x.dtype == np.complex64 and d.x.shape == (48, *CONTRACT[task].frame_shape)
    assert d.y.dtype == np.int64 and d.y.min() >= 0 and d.y.max() < len(d.classes)
    np.testing.assert_allclose(np.mean(np.abs(d.x.astype(complex)) ** 2, axis=(1, 2)), 1.0, rtol=1e-4)
    lo, hi = {"modulation": (-20, 18), "interference": (0, 25), "beam": (-10, 20)}[task]
    assert d.snr_db.min() >= lo and d.snr_db.max() <= hi
    if task != "beam":
        assert np.bincount(d.y, minlength=len(d.classes)).min() >= 48 // len(d.classes)


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_bytes(task):
    a, b, c = generate(task, 12, seed=5), generate(task, 12, seed=5), generate(task, 12, seed=6)
    assert a.x.tobytes() == b.x.tobytes() and np.array_equal(a.y, b.y)
    assert a.x.tobytes() != c.x.tobytes()


def test_plane_wave_from_beam_direction_is_labelled_that_beam():
    t = np.arange(64)
    for b in range(ANTENNAS):
        wave = steering(np.array((b - 8) / 8))[:, None] * np.exp(2j * np.pi * 0.1 * t)
        assert best_beam(wave) == b
    # element n carries phase exp(j*pi*n*sin(theta)): a wave from sin(theta) = 0.5 is beam 12, not beam 4
    assert best_beam(steering(np.array(0.5))[:, None] * np.ones(64)) == 12


def test_beam_labels_are_the_best_dft_beam_of_the_generated_frames():
    d = generate("beam", 200, seed=1, snr_db=40)
    agree = np.mean([best_beam(frame) == label for frame, label in zip(d.x, d.y)])
    assert agree > 0.97, agree
    assert len(np.unique(d.y)) >= 12  # directions spread over the codebook


def test_linear_modulations_span_a_wide_range_of_bandwidths():
    d = generate("modulation", 220, seed=3, snr_db=30)
    bpsk = d.x[np.array(d.classes)[d.y] == "BPSK", 0]
    psd = np.fft.fftshift(np.abs(np.fft.fft(bpsk, axis=1)) ** 2, axes=1)
    psd = np.apply_along_axis(lambda p: np.convolve(p, np.ones(9) / 9, "same"), 1, psd)
    occupied = np.sum(psd > 0.1 * psd.max(axis=1, keepdims=True), axis=1) / psd.shape[1]
    assert np.quantile(occupied, 0.9) > 2.5 * np.quantile(occupied, 0.1), occupied


def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(DataError, match="crosscheck: unknown task 'los'"):
        generate("los", 4, 0)
    with pytest.raises(DataError, match="n must be an integer >= 1"):
        generate("beam", 0, 0)
    with pytest.raises(DataError, match="samples must be a positive multiple of 16"):
        generate("modulation", 4, 0, samples=100)


def test_written_apart_from_our_generators():
    allowed = {"from xapp.data import DataError, TaskData", "from xapp.data import TASKS as CONTRACT"}
    for path in PACKAGE.glob("*.py"):
        for line in re.findall(r"^\s*(?:from|import) xapp\.data.*$", path.read_text(), re.M):
            assert line.strip() in allowed, f"{path.name}: {line.strip()}"


def test_cli_source_crosscheck(tmp_path, capsys):
    out = tmp_path / "cc.npz"
    assert main(["data", "generate", "--source", "crosscheck", "--task", "interference", "--n", "12",
                 "--seed", "4", "--out", str(out)]) == 0
    assert load_npz(out).x.tobytes() == generate("interference", 12, 4).x.tobytes()
    assert main(["data", "generate", "--source", "crosscheck", "--task", "fingerprint", "--n", "4",
                 "--out", str(out)]) == 2
    assert "crosscheck: unknown task 'fingerprint'" in capsys.readouterr().err
