"""Dataset files (npz, SigMF) and the `xapp data` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sigmf
from sigmf import SigMFFile

from xapp.cli import main
from xapp.data import DataFormatError, generate
from xapp.data.io import load_npz, load_sigmf, save_npz


def test_npz_round_trip_keeps_everything(tmp_path):
    d = generate("interference", 50, seed=1)
    path = tmp_path / "set.npz"
    save_npz(path, d)
    back = load_npz(path)
    assert back.task == "interference" and back.classes == d.classes
    assert back.x.dtype == np.complex64 and back.x.tobytes() == d.x.tobytes()
    assert back.y.tobytes() == d.y.tobytes() and back.snr_db.tobytes() == d.snr_db.tobytes()
    assert set(back.meta) == set(d.meta)
    for key in d.meta:
        np.testing.assert_array_equal(back.meta[key], d.meta[key])
    with np.load(path, allow_pickle=False) as raw:  # readable without pickle, classes as strings
        assert raw["classes"].dtype.kind == "U"


def write_npz(path, **fields):
    with open(path, "wb") as f:
        np.savez(f, **fields)
    return path


GOOD = {
    "x": np.ones((3, 1, 32), np.complex64),
    "y": np.array([0, 1, 0]),
    "classes": np.array(["a", "b"]),
    "snr_db": np.zeros(3, np.float32),
}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({k: v for k, v in GOOD.items() if k != "x"}, "missing field 'x'"),
        (GOOD | {"x": np.ones((3, 32), np.complex64)}, "field 'x' must be complex [N, antennas, samples]"),
        (GOOD | {"x": np.ones((3, 1, 32), np.float32)}, "field 'x' must be complex"),
        (GOOD | {"y": np.array([0, 2, 0])}, "field 'y' has 1 labels outside [-1, 1] (first at index 1)"),
        (GOOD | {"y": np.array([0.0, 1.0, 0.0])}, "field 'y' must be integer"),
        (GOOD | {"classes": np.array([1, 2])}, "field 'classes' must be a 1-D string array"),
        (GOOD | {"snr_db": np.zeros(2, np.float32)}, "field 'snr_db' must have shape [3]"),
        (GOOD | {"meta.k": np.zeros(4)}, "field 'meta.k' must have 3 rows"),
        (GOOD | {"classes": np.array(["a", None], dtype=object)}, "needs pickle"),
    ],
)
def test_npz_errors_name_file_and_field(tmp_path, fields, message):
    path = write_npz(tmp_path / "bad.npz", **fields)
    with pytest.raises(DataFormatError) as err:
        load_npz(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_npz_unreadable_files(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        load_npz(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DataFormatError, match="junk.npz: not a readable .npz"):
        load_npz(junk)


def write_recording(directory, iq: np.ndarray, annotations: list[tuple[int, int, str]]) -> str:
    data_path = str(directory / "capture.sigmf-data")
    iq.astype(np.complex64).tofile(data_path)
    meta = SigMFFile(
        data_file=data_path,
        global_info={sigmf.DATATYPE_KEY: "cf32_le", sigmf.SAMPLE_RATE_KEY: 1e6, sigmf.NUM_CHANNELS_KEY: iq.shape[1]},
    )
    meta.add_capture(0, metadata={sigmf.FREQUENCY_KEY: 2.4e9})
    for start, count, label in annotations:
        meta.add_annotation(start, count, metadata={sigmf.LABEL_KEY: label})
    meta_path = str(directory / "capture.sigmf-meta")
    meta.tofile(meta_path)
    return meta_path


def test_sigmf_frames_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    iq = (rng.standard_normal((5 * 256 + 100, 2)) + 1j * rng.standard_normal((5 * 256 + 100, 2))) * 3
    # frames: [0,256) [256,512) ... ; "tone" covers frames 0-1, "ofdm" covers frame 3 only partly-> 2 full
    path = write_recording(tmp_path, iq, [(0, 512, "tone"), (700, 680, "ofdm")])
    d = load_sigmf(path, samples=256)
    assert d.x.shape == (5, 2, 256) and d.x.dtype == np.complex64
    assert d.classes == ("ofdm", "tone")
    assert d.y.tolist() == [1, 1, -1, 0, 0]  # frame 2 [512, 768) is not entirely inside either annotation
    np.testing.assert_allclose(np.mean(np.abs(d.x) ** 2, axis=(1, 2)), 1.0, rtol=1e-5)
    # channel layout: frame 0, antenna 1 is the second column of the recording (up to scale)
    ratio = d.x[0, 1] / iq[:256, 1]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
    fixed = load_sigmf(path, samples=256, task="interference", classes=("none", "tone", "chirp", "fsk_hopper", "ofdm", "oqpsk"))
    assert fixed.task == "interference" and fixed.y.tolist() == [1, 1, -1, 4, 4]


def test_sigmf_errors(tmp_path):
    iq = np.ones((1000, 1), np.complex64)
    path = write_recording(tmp_path, iq, [(0, 1000, "QPSK")])
    with pytest.raises(DataFormatError, match=r"annotations\[0\]\.core:label 'QPSK' is not one of the classes"):
        load_sigmf(path, samples=100, classes=("BPSK",))
    with pytest.raises(DataFormatError, match="1000 samples is less than one frame of 1024"):
        load_sigmf(path, samples=1024)
    with pytest.raises(DataFormatError, match="missing.sigmf-meta: cannot open SigMF recording"):
        load_sigmf(tmp_path / "missing.sigmf-meta")
    (tmp_path / "capture.sigmf-data").unlink()
    with pytest.raises(DataFormatError, match="capture.sigmf-meta: not a valid SigMF recording"):
        load_sigmf(path, samples=100)
    broken = tmp_path / "broken.sigmf-meta"
    broken.write_text("{not json")
    with pytest.raises(DataFormatError, match="broken.sigmf-meta: not a valid SigMF recording"):
        load_sigmf(broken)


def test_cli_generate_show_and_reload(tmp_path, capsys):
    out = tmp_path / "beam.npz"
    assert main(["data", "generate", "--task", "beam", "--n", "64", "--seed", "3", "--out", str(out)]) == 0
    assert load_npz(out).x.tobytes() == generate("beam", 64, 3).x.tobytes()
    png = tmp_path / "beam.png"
    assert main(["data", "show", str(out), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000

    mod = tmp_path / "mod.npz"
    assert main(["data", "generate", "--task", "modulation", "--n", "44", "--out", str(mod), "--samples", "128", "--snr-db", "0", "10"]) == 0
    d = load_npz(mod)
    assert d.x.shape == (44, 1, 128) and d.snr_db.min() >= 0 and d.snr_db.max() <= 10

    interference = tmp_path / "interference.npz"
    assert main(["data", "generate", "--task", "interference", "--n", "30", "--out", str(interference)]) == 0
    assert main(["data", "show", str(interference), "--out", str(tmp_path / "interference.png")]) == 0
    assert (tmp_path / "interference.png").stat().st_size > 20_000


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["data", "generate", "--task", "radar", "--n", "4", "--out", str(tmp_path / "x.npz")]) == 2
    assert "unknown task 'radar'" in capsys.readouterr().err
    assert main(["data", "generate", "--task", "modulation", "--n", "4", "--samples", "100", "--out", str(tmp_path / "x.npz")]) == 2
    assert "samples must be a multiple of 16" in capsys.readouterr().err
    assert main(["data", "show", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x.png")]) == 2
    assert "none.npz: no such file" in capsys.readouterr().err
    assert main(["data", "bench", "--task", "radar"]) == 2


def test_cli_bench_json(capsys):
    assert main(["data", "bench", "--n", "64", "--repeats", "1", "--task", "los", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["task"] for row in result["tasks"]] == ["los"] and result["tasks"][0]["frames_per_s"] > 0
    assert set(result["pretrain_mixture_per_call"]) == {"128", "256"}
