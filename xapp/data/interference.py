"""`interference`: a desired single-carrier signal plus at most one interferer of a known kind."""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import dsp, modulation

CLASSES = ("none", "tone", "chirp", "fsk_hopper", "ofdm", "oqpsk")
SNR_DB = (0.0, 25.0)  # desired signal to noise
INR_DB = (0.0, 25.0)  # interferer (while active) to noise
DESIRED = ("BPSK", "QPSK", "8PSK", "QAM16")
MAX_FREQ = 0.45  # interferer content stays inside +-MAX_FREQ cycles/sample

_BT_GFSK = dsp.gaussian_frequency_pulse(8, bt=0.5)
OFDM_SUBCARRIERS = 64  # WiFi-like: 64-point FFT, 52 used subcarriers, 1/4 cyclic prefix
OFDM_USED = np.r_[-26:0, 1:27]


class Interferer:
    """Unit-power interferer waveforms [m, length] plus their per-frame parameters."""

    def __init__(self, rng: np.random.Generator, m: int, length: int) -> None:
        self.rng, self.m, self.length = rng, m, length
        self.k = np.arange(length, dtype=np.float32)[None, :]
        self.freq = np.full(m, np.nan, np.float32)  # centre frequency, cycles/sample
        self.bandwidth = np.zeros(m, np.float32)
        self.rate = np.zeros(m, np.float32)  # chirp slope, cycles/sample^2
        self.duty = np.ones(m, np.float32)  # fraction of the frame the interferer is on

    def phase0(self) -> np.ndarray:
        return self.rng.uniform(-np.pi, np.pi, self.m)

    def none(self) -> np.ndarray:
        self.duty[:] = 0
        return np.zeros((self.m, self.length), np.complex64)

    def tone(self) -> np.ndarray:
        self.freq = self.rng.uniform(-MAX_FREQ, MAX_FREQ, self.m).astype(np.float32)
        return dsp.expj((2 * np.pi * self.freq[:, None] * self.k + self.phase0()[:, None]).astype(np.float32))

    def chirp(self) -> np.ndarray:
        """LFM radar: a sawtooth sweep of `bandwidth` every `period` samples."""
        rng, m = self.rng, self.m
        self.bandwidth = rng.uniform(0.1, 0.6, m).astype(np.float32)
        low = rng.uniform(-MAX_FREQ, MAX_FREQ - self.bandwidth)
        period = rng.uniform(self.length / 4, self.length, m)
        start = rng.uniform(0, period)
        self.freq = (low + self.bandwidth / 2).astype(np.float32)
        self.rate = (self.bandwidth / period).astype(np.float32)
        inst = low[:, None] + self.bandwidth[:, None] * (np.mod(self.k + start[:, None], period[:, None]) / period[:, None])
        return dsp.continuous_phase(inst, self.phase0())

    def fsk_hopper(self) -> np.ndarray:
        """Bluetooth-like: GFSK (h=0.32, BT=0.5, 8 samples/symbol) hopping over 16 channels."""
        rng, m, length = self.rng, self.m, self.length
        bits = rng.integers(0, 2, (m, dsp.symbols_for(length, 8, _BT_GFSK))).astype(np.float32) * 2 - 1
        freq = dsp.shape(bits, _BT_GFSK, 8, length) * np.float32(0.32 / 16)
        channels = np.linspace(-0.4, 0.4, 16, dtype=np.float32)
        dwell = rng.choice([128, 256], m)
        hops = channels[rng.integers(0, 16, (m, -(-length // 128)))]
        hop_index = (np.arange(length)[None, :] // dwell[:, None]).astype(np.intp)
        freq += np.take_along_axis(hops, hop_index, axis=1)
        self.freq = hops[:, 0].copy()
        self.bandwidth[:] = 0.1
        return dsp.continuous_phase(freq, self.phase0())

    def ofdm(self) -> np.ndarray:
        """WiFi-like burst: 52 of 64 subcarriers, QPSK/16QAM, 1/4 CP, oversampled 2x or 4x, shifted."""
        rng, m, length = self.rng, self.m, self.length
        out = np.zeros((m, length), np.complex64)
        oversample = rng.choice([2, 4], m)
        for os_ in (2, 4):
            rows = np.flatnonzero(oversample == os_)
            if not len(rows):
                continue
            size = OFDM_SUBCARRIERS * os_
            symbol = size + size // 4
            count = -(-length // symbol) + 1
            points = modulation.CONSTELLATIONS["QPSK" if os_ == 2 else "QAM16"].astype(np.complex64)
            grid = np.zeros((len(rows), count, size), np.complex64)
            grid[:, :, OFDM_USED % size] = points[rng.integers(0, len(points), (len(rows), count, len(OFDM_USED)))]
            body = np.fft.ifft(grid, axis=-1).astype(np.complex64)
            frames = np.concatenate([body[:, :, -size // 4 :], body], axis=-1).reshape(len(rows), -1)
            start = rng.integers(0, symbol, len(rows))
            out[rows] = np.take_along_axis(frames, start[:, None] + np.arange(length)[None, :], axis=1)
            self.bandwidth[rows] = len(OFDM_USED) / size
        self.freq = rng.uniform(-MAX_FREQ + self.bandwidth / 2, MAX_FREQ - self.bandwidth / 2).astype(np.float32)
        out *= dsp.expj((2 * np.pi * self.freq[:, None] * self.k).astype(np.float32))
        # a burst covering a random quarter to all of the frame
        self.duty = rng.uniform(0.25, 1.0, m).astype(np.float32)
        begin = rng.uniform(0, 1 - self.duty) * length
        on = (self.k >= begin[:, None]) & (self.k < (begin + self.duty * length)[:, None])
        return out * on

    def oqpsk(self) -> np.ndarray:
        """Zigbee-like O-QPSK: half-sine chips, Q offset by one chip, 4 samples/chip, shifted."""
        rng, m, length = self.rng, self.m, self.length
        chip = 4
        pulse = np.sin(np.pi * np.arange(2 * chip) / (2 * chip)).astype(np.float32)
        count = -(-length // (2 * chip)) + 1
        chips = rng.integers(0, 2, (m, 2, count)).astype(np.float32) * 2 - 1
        waves = (chips[..., None] * pulse).reshape(m, 2, -1)
        out = (waves[:, 0, chip : chip + length] + 1j * waves[:, 1, :length]).astype(np.complex64)
        self.bandwidth[:] = 1.5 / (2 * chip)
        self.freq = rng.uniform(-MAX_FREQ + 0.1, MAX_FREQ - 0.1, m).astype(np.float32)
        return out * dsp.expj((2 * np.pi * self.freq[:, None] * self.k + self.phase0()[:, None]).astype(np.float32))


KINDS: dict[str, Callable[[Interferer], np.ndarray]] = {name: getattr(Interferer, name) for name in CLASSES}


def frames(
    rng: np.random.Generator,
    y: np.ndarray,
    snr: np.ndarray,
    length: int,
    impairments: bool,
    clean: bool,
    inr_db: tuple[float, float] = INR_DB,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    m = len(y)
    desired_kind = rng.integers(0, len(DESIRED), m)
    labels = np.array([modulation.CLASSES.index(c) for c in DESIRED])[desired_kind]
    s = modulation.baseband_by_label(rng, labels, length + dsp.PAD)
    desired, meta = dsp.single_antenna_channel(rng, s, length, impairments)

    interferer = np.zeros((m, length), np.complex64)
    params = {"freq": np.full(m, np.nan, np.float32), "bandwidth": np.zeros(m, np.float32),
              "rate": np.zeros(m, np.float32), "duty": np.zeros(m, np.float32)}
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        maker = Interferer(rng, len(rows), length)
        interferer[rows] = KINDS[CLASSES[label]](maker)
        for key in params:
            params[key][rows] = getattr(maker, key)
    # INR counts the power while the interferer is on, so bursts are not diluted by their idle time
    on_power = dsp.power(interferer)[:, 0] / np.maximum(params["duty"], 1e-6)
    inr = rng.uniform(*inr_db, m).astype(np.float32)
    inr[y == CLASSES.index("none")] = np.nan
    noise_power = 10 ** (-snr / 10)  # desired has unit power
    gain = np.where(on_power > 0, np.sqrt(noise_power * 10 ** (np.nan_to_num(inr) / 10) / np.maximum(on_power, 1e-30)), 0)
    interferer *= gain[:, None].astype(np.float32)

    mixed = desired + interferer
    noisy, scale = dsp.add_noise(rng, mixed, snr, reference=np.ones(m, np.float32))
    meta |= {f"int_{k}": v for k, v in params.items()}
    meta |= {"inr_db": inr, "desired": desired_kind.astype(np.int64)}
    if clean:
        meta["clean"] = (mixed * scale)[:, None, :]
        meta["interferer"] = (interferer * scale)[:, None, :]
    return noisy[:, None, :], y, meta
