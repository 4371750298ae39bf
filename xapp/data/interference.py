"""`interference`: a desired signal (one of several single-carrier and FSK waveforms at a random rate
and pulse, through the randomised receive chain) plus at most one interferer of a known kind, each
kind drawn over wide bandwidth, rate, duty-cycle and burst-position ranges (xapp/data/CARD.md)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import channel, dsp, modulation, pulses

CLASSES = ("none", "tone", "chirp", "fsk_hopper", "ofdm", "oqpsk")
SNR_DB = (0.0, 25.0)  # desired signal to noise
INR_DB = (0.0, 25.0)  # interferer (while active) to noise
DESIRED = ("BPSK", "QPSK", "8PSK", "QAM16", "QAM64", "PAM4", "GFSK", "CPFSK")
MAX_FREQ = 0.45  # interferer content stays inside +-MAX_FREQ cycles/sample
BURST_SHARE = 0.5  # tone, chirp, hopper and O-QPSK interferers: share of frames where they burst
BURST_DUTY = (0.2, 1.0)  # fraction of the frame a burst covers (OFDM always bursts)
CHIRP_BANDWIDTH, CHIRP_PERIOD = (0.05, 0.8), (1 / 8, 2.0)  # sweep width; period in frames
HOPPER_INDEX, HOPPER_BT, HOPPER_SPS = (0.25, 0.5), (0.3, 0.7), (4.0, 16.0)
HOPPER_CHANNELS, HOPPER_DWELL = (8, 40), (64, 512)
OFDM_FFT = (32, 64, 128)  # WiFi-like: 13/16 of the subcarriers used, DC empty, 1/4 or 1/8 cyclic prefix
OFDM_OVERSAMPLE = (1.25, 4.0)  # IFFT size / FFT size, rounded to a multiple of 8
OQPSK_SAMPLES_PER_CHIP = (2, 8)


class Interferer:
    """Unit-power interferer waveforms [m, length] plus their per-frame parameters."""

    def __init__(self, rng: np.random.Generator, m: int, length: int) -> None:
        self.rng, self.m, self.length = rng, m, length
        self.k = np.arange(length, dtype=np.float32)[None, :]
        self.freq = np.full(m, np.nan, np.float32)  # centre frequency, cycles/sample
        self.bandwidth = np.zeros(m, np.float32)
        self.rate = np.zeros(m, np.float32)  # chirp slope, cycles/sample^2
        self.duty = np.ones(m, np.float32)  # fraction of the frame the interferer is on
        self.start = np.zeros(m, np.float32)  # where it turns on, fraction of the frame

    def phase0(self) -> np.ndarray:
        return self.rng.uniform(-np.pi, np.pi, self.m)

    def none(self) -> np.ndarray:
        self.duty[:] = 0
        return np.zeros((self.m, self.length), np.complex64)

    def burst(self, x: np.ndarray, always: bool = False) -> np.ndarray:
        """Keep x on for a random window of the frame (on a share of the frames, or always)."""
        rng, m = self.rng, self.m
        bursting = np.ones(m, bool) if always else rng.random(m) < BURST_SHARE
        self.duty = np.where(bursting, rng.uniform(*BURST_DUTY, m), 1.0).astype(np.float32)
        begin = rng.uniform(0, 1 - self.duty) * self.length
        self.start = (begin / self.length).astype(np.float32)
        on = (self.k >= begin[:, None]) & (self.k < (begin + self.duty * self.length)[:, None])
        return x * on

    def tone(self) -> np.ndarray:
        self.freq = self.rng.uniform(-MAX_FREQ, MAX_FREQ, self.m).astype(np.float32)
        return self.burst(dsp.expj((2 * np.pi * self.freq[:, None] * self.k + self.phase0()[:, None]).astype(np.float32)))

    def chirp(self) -> np.ndarray:
        """LFM radar: a sawtooth sweep of `bandwidth` every `period` samples, up or down."""
        rng, m = self.rng, self.m
        self.bandwidth = rng.uniform(*CHIRP_BANDWIDTH, m).astype(np.float32)
        low = rng.uniform(-MAX_FREQ, MAX_FREQ - self.bandwidth)
        period = channel.log_uniform(rng, *CHIRP_PERIOD, m) * self.length
        start = rng.uniform(0, period)
        self.freq = (low + self.bandwidth / 2).astype(np.float32)
        down = rng.random(m) < 0.5
        self.rate = (np.where(down, -1, 1) * self.bandwidth / period).astype(np.float32)
        ramp = np.mod(self.k + start[:, None], period[:, None]) / period[:, None]
        inst = low[:, None] + self.bandwidth[:, None] * np.where(down[:, None], 1 - ramp, ramp)
        return self.burst(dsp.continuous_phase(inst, self.phase0()))

    def fsk_hopper(self) -> np.ndarray:
        """Bluetooth-like: 2-level GFSK at a random index, BT and rate, hopping over a random channel
        grid with a random dwell."""
        rng, m, length = self.rng, self.m, self.length
        sps = channel.log_uniform(rng, *HOPPER_SPS, m)
        h, bt = rng.uniform(*HOPPER_INDEX, m), rng.uniform(*HOPPER_BT, m)
        rows = pulses.FREQUENCY_PULSES.rows(np.full(m, pulses.KINDS.index("gauss")), bt)
        bits = rng.integers(0, 2, (m, pulses.symbols_needed(length, sps))).astype(np.float32) * 2 - 1
        freq = pulses.shape(bits, pulses.FREQUENCY_PULSES, rows, sps, rng.random(m), length)
        freq *= (h / (2 * sps)).astype(np.float32)[:, None]
        count = rng.integers(HOPPER_CHANNELS[0], HOPPER_CHANNELS[1] + 1, m)
        dwell = rng.integers(HOPPER_DWELL[0], HOPPER_DWELL[1] + 1, m)
        slots = -(-length // HOPPER_DWELL[0])
        channels = (rng.integers(0, 1 << 30, (m, slots)) % count[:, None] + 0.5) / count[:, None]
        hops = ((channels * 2 - 1) * 0.4).astype(np.float32)  # channel centres spread over +-0.4
        hop_index = (np.arange(length)[None, :] // dwell[:, None]).astype(np.intp)
        freq += np.take_along_axis(hops, hop_index, axis=1)
        self.freq = hops[:, 0].copy()
        self.bandwidth = (2 * (h / 2 + 1) / sps).astype(np.float32)
        return self.burst(dsp.continuous_phase(freq, self.phase0()))

    def ofdm(self) -> np.ndarray:
        """WiFi-like burst: a random FFT size with 13/16 of the subcarriers used (DC empty), QPSK/16QAM,
        1/4 or 1/8 cyclic prefix, at a random oversampling (a zero-padded IFFT: exact interpolation),
        shifted in frequency."""
        rng, m, length = self.rng, self.m, self.length
        out = np.zeros((m, length), np.complex64)
        fft = rng.choice(OFDM_FFT, m)
        padded = (np.rint(fft * rng.uniform(*OFDM_OVERSAMPLE, m) / 8) * 8).astype(int)
        prefix = padded // rng.choice([4, 8], m)
        for size, cp, n_fft in sorted({(a, b, c) for a, b, c in zip(padded, prefix, fft)}):
            rows = np.flatnonzero((padded == size) & (prefix == cp) & (fft == n_fft))
            half = n_fft * 13 // 32
            used = np.r_[-half:0, 1 : half + 1] % size
            symbol = size + cp
            count = -(-length // symbol) + 1
            points = modulation.CONSTELLATIONS["QPSK" if rng.random() < 0.5 else "QAM16"].astype(np.complex64)
            grid = np.zeros((len(rows), count, size), np.complex64)
            grid[:, :, used] = points[rng.integers(0, len(points), (len(rows), count, len(used)))]
            body = np.fft.ifft(grid, axis=-1).astype(np.complex64)
            stream = np.concatenate([body[:, :, size - cp :], body], axis=-1).reshape(len(rows), -1)
            start = rng.integers(0, symbol, len(rows))
            out[rows] = np.take_along_axis(stream, start[:, None] + np.arange(length)[None, :], axis=1)
            self.bandwidth[rows] = len(used) / size
        self.freq = rng.uniform(-MAX_FREQ + self.bandwidth / 2, MAX_FREQ - self.bandwidth / 2).astype(np.float32)
        out *= dsp.expj((2 * np.pi * self.freq[:, None] * self.k).astype(np.float32))
        return self.burst(out, always=True)

    def oqpsk(self) -> np.ndarray:
        """Zigbee-like O-QPSK: half-sine chips at a random number of samples per chip, Q offset by one
        chip, shifted in frequency."""
        rng, m, length = self.rng, self.m, self.length
        out = np.zeros((m, length), np.complex64)
        chip = rng.integers(OQPSK_SAMPLES_PER_CHIP[0], OQPSK_SAMPLES_PER_CHIP[1] + 1, m)
        for c in np.unique(chip):
            rows = np.flatnonzero(chip == c)
            pulse = np.sin(np.pi * np.arange(2 * c) / (2 * c)).astype(np.float32)
            count = -(-length // (2 * c)) + 1
            chips = rng.integers(0, 2, (len(rows), 2, count)).astype(np.float32) * 2 - 1
            waves = (chips[..., None] * pulse).reshape(len(rows), 2, -1)
            out[rows] = waves[:, 0, c : c + length] + 1j * waves[:, 1, :length]
        self.bandwidth = (1.5 / (2 * chip)).astype(np.float32)
        self.freq = rng.uniform(-MAX_FREQ + self.bandwidth / 2, MAX_FREQ - self.bandwidth / 2).astype(np.float32)
        out *= dsp.expj((2 * np.pi * self.freq[:, None] * self.k + self.phase0()[:, None]).astype(np.float32))
        return self.burst(out)


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
    s, waveform = modulation.baseband_by_label(rng, labels, length + channel.PAD)
    desired, meta = channel.single_antenna(rng, s, length, waveform["bandwidth"], impairments)
    meta |= {"desired_sps": waveform["sps"], "desired_bandwidth": waveform["bandwidth"]}

    interferer = np.zeros((m, length), np.complex64)
    params = {"freq": np.full(m, np.nan, np.float32), "bandwidth": np.zeros(m, np.float32),
              "rate": np.zeros(m, np.float32), "duty": np.zeros(m, np.float32), "start": np.zeros(m, np.float32)}
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
    noisy = noisy[:, None, :]
    return (channel.adc(rng, noisy, meta) if impairments else noisy), y, meta
