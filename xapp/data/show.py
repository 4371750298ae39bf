"""A picture of a dataset a person would look at: per class, what its frames look like."""

from __future__ import annotations

import os

import numpy as np

from .base import TaskData


def _frames_of(data: TaskData, label: int) -> np.ndarray:
    return data.x[data.y == label]


def _single_antenna(data: TaskData, fig) -> None:
    """Per class: one frame's constellation, its spectrogram, and the class-average PSD."""
    labels = [c for c in range(len(data.classes)) if np.any(data.y == c)]
    axes = fig.subplots(len(labels), 3, squeeze=False)
    for row, label in zip(axes, labels):
        frames = _frames_of(data, label)[:, 0]
        snr = np.nan_to_num(data.snr_db[data.y == label], nan=-np.inf)
        pick = int(np.argmax(snr))  # the cleanest frame shows the most
        frame = frames[pick]
        row[0].plot(frame.real, frame.imag, ".", ms=1.5, alpha=0.6)
        row[0].set_aspect("equal")
        row[0].set_ylabel(f"{data.classes[label]}\nSNR {snr[pick]:.0f} dB", fontsize=9)
        nfft = 64
        segments = frame[: len(frame) // nfft * nfft].reshape(-1, nfft) * np.hanning(nfft)
        spec = np.fft.fftshift(np.abs(np.fft.fft(segments, axis=1)) ** 2, axes=1)
        row[1].imshow(
            10 * np.log10(spec.T + 1e-12), aspect="auto", origin="lower", cmap="viridis",
            extent=(0, len(frame), -0.5, 0.5),
        )
        psd = np.mean(np.abs(np.fft.fft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2, axis=0)
        freqs = np.fft.fftshift(np.fft.fftfreq(frames.shape[1]))
        row[2].plot(freqs, 10 * np.log10(np.fft.fftshift(psd) / psd.max() + 1e-12), lw=0.8)
        row[2].set_ylim(-60, 3)
        row[2].grid(alpha=0.3)
    axes[0][0].set_title("constellation (best-SNR frame)", fontsize=9)
    axes[0][1].set_title("spectrogram (time vs cycles/sample)", fontsize=9)
    axes[0][2].set_title(f"mean PSD, dB (n per class ~ {len(data) // len(labels)})", fontsize=9)
    axes[-1][2].set_xlabel("frequency, cycles/sample")


def _array(data: TaskData, fig) -> None:
    """Per class: the mean beam-gain pattern over arrival angle, with the DFT beam directions marked."""
    antennas = data.x.shape[1]
    u = np.linspace(-1, 1, 361)
    steer = (np.exp(1j * np.pi * np.outer(u, np.arange(antennas))) / np.sqrt(antennas)).astype(np.complex64)
    beams = np.degrees(np.arcsin((np.arange(antennas) - antennas / 2) / (antennas / 2)))  # beam b: u = (b-A/2)/(A/2)
    labels = [c for c in range(len(data.classes)) if np.any(data.y == c)]
    cols = min(4, len(labels))
    axes = fig.subplots(-(-len(labels) // cols), cols, squeeze=False, sharex=True, sharey=True)
    for ax in axes.ravel()[len(labels) :]:
        ax.set_visible(False)
    for ax, label in zip(axes.ravel(), labels):
        frames = _frames_of(data, label)[:200]
        snapshots = frames.transpose(1, 0, 2).reshape(antennas, -1)  # one GEMM over all frames
        gain = np.mean(np.abs(steer.conj() @ snapshots) ** 2, axis=1)
        ax.plot(np.degrees(np.arcsin(u)), np.maximum(10 * np.log10(gain / gain.max()), -30), lw=1)
        ax.vlines(beams, -30, 0, color="0.85", lw=0.5, zorder=0)
        if data.classes[label].startswith("beam"):
            ax.axvline(beams[label], color="C3", lw=1, ls="--")
        ax.set_title(f"{data.classes[label]} (n={int(np.sum(data.y == label))})", fontsize=9)
        ax.set_xlim(-90, 90)
        ax.set_xticks([-90, -45, 0, 45, 90])
    for ax in axes[-1]:
        ax.set_xlabel("arrival angle, degrees")
    for ax in axes[:, 0]:
        ax.set_ylabel("gain, dB")


def save_figure(data: TaskData, out: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    multi = data.x.shape[1] > 1
    rows = len(np.unique(data.y[data.y >= 0]))
    size = (12, 2.4 * -(-rows // 4) + 0.8) if multi else (12, 2.0 * rows + 0.8)
    fig = plt.figure(figsize=size, layout="constrained")
    known = data.snr_db[np.isfinite(data.snr_db)]
    snr = f"SNR {known.min():.0f}..{known.max():.0f} dB" if len(known) else "SNR unknown"
    fig.suptitle(
        f"{data.task}: {len(data)} frames of {data.x.shape[1]}x{data.x.shape[2]}, {snr}"
        + (" - mean beam-gain pattern per class (grey: DFT beams, red: the class's beam)" if multi else ""),
        fontsize=11,
    )
    (_array if multi else _single_antenna)(data, fig)
    fig.savefig(out, dpi=90)
    plt.close(fig)
