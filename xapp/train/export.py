"""Ship the pre-trained encoder: fp16 safetensors + a manifest (config, data, metrics, sha256, command)
and a human-readable model card rendered from that manifest."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from xapp.model.encoder import Encoder
from xapp.model.safefile import sha256_file
from xapp.model.checkpoint import save_encoder
from xapp.train.pretrain import PretrainConfig

MIXTURE = ("modulation (11 RadioML classes, SNR -20..18 dB, fading, CFO/SRO, phase noise), "
           "interference (6 interferer kinds over a desired signal), beam (16-antenna ULA pilots through "
           "geometric multipath); unlabelled, fresh every step; fingerprint and los are never seen")


def manifest_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def card_path(weights: str | Path) -> Path:
    return Path(weights).with_name("ENCODER_CARD.md")


def export_encoder(encoder: Encoder, cfg: PretrainConfig, state: dict, out: str | Path, run: str | Path,
                   command: str) -> str:
    out = Path(out)
    sha = save_encoder(out, encoder, steps=state["step"], final_loss=_final_loss(state["losses"]))
    manifest = {
        "file": out.name,
        "sha256": sha,
        "bytes": out.stat().st_size,
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "config": encoder.cfg.to_dict(),
        "pretraining": {k: v for k, v in cfg.as_dict().items() if k != "encoder"},
        "data": MIXTURE,
        "steps": state["step"],
        "frames_seen": state["step"] * cfg.batch,
        "wall_minutes": round(state["wall_s"] / 60, 1),
        "hardware": _hardware(state.get("device", "cpu")),
        "final_loss": _final_loss(state["losses"]),
        "final_view_losses": {name: _final_loss(values) for name, values in state.get("view_losses", {}).items()},
        "first_loss": state["losses"][0],
        "command": command,
        "loss_curve": "ENCODER_LOSS.png",
    }
    if manifest_path(out).exists() and read_manifest(out).get("sha256") == sha:
        previous = read_manifest(out)  # same weights: keep the probe measured on them
        manifest.update({k: previous[k] for k in ("probe",) if k in previous})
    src_plot = Path(run) / "loss.png"
    if src_plot.exists():
        out.with_name("ENCODER_LOSS.png").write_bytes(src_plot.read_bytes())
    write_manifest(out, manifest)
    return sha


def _hardware(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _final_loss(losses: list[float]) -> float:
    tail = losses[-50:]
    return round(sum(tail) / len(tail), 5)


def write_manifest(weights: str | Path, manifest: dict) -> None:
    manifest_path(weights).write_text(json.dumps(manifest, indent=1) + "\n")
    card_path(weights).write_text(render_card(manifest))


def read_manifest(weights: str | Path) -> dict:
    return json.loads(manifest_path(weights).read_text())


def verify_manifest(weights: str | Path) -> None:
    manifest = read_manifest(weights)
    actual = sha256_file(weights)
    if actual != manifest["sha256"]:
        raise ValueError(f"{weights}: sha256 {actual} differs from its manifest's {manifest['sha256']}")


def _frame_views(p: dict) -> str:
    if not p.get("frame_weight"):
        return ""
    tokens = "all tokens" if p.get("frame_pass") == "full" else "the visible tokens"
    return (f", plus (weight {p['frame_weight']}) two views of the whole frame read linearly from every exit's "
            f"mean-pooled state over {tokens}: its 16-band log spectrum and its 16-beam log angular spectrum")


def render_card(m: dict) -> str:
    c = m["config"]
    lines = [
        "# Encoder model card",
        "",
        "Generated from `encoder.json` by `xapp pretrain --export` and `xapp probe --card`; do not edit by hand.",
        "",
        f"- Architecture: ViT over 16-sample I/Q patches, dim {c['dim']}, {c['depth']} blocks, {c['heads']} heads, "
        f"MLP ratio {c['mlp_ratio']}; {m['parameters']:,} parameters; CLS + 64 tokens for 1x1024 and 16x64 frames.",
        f"- Weights: `{m['file']}`, fp16, {m['bytes'] / 1e6:.1f} MB, sha256 `{m['sha256']}`.",
        f"- Pre-training: masked autoencoder, {int(m['pretraining']['mask_ratio'] * 100)} % of patches masked, "
        f"decoder dim {m['pretraining']['decoder_dim']} x {m['pretraining']['decoder_depth']} blocks, "
        f"standardised MSE on five views of the masked patches (raw I/Q, log power, 4-band log spectrum, "
        f"envelope spread, phase relative to antenna 0){_frame_views(m['pretraining'])}; why: `docs/pretraining.md`; "
        f"{m['steps']} steps of {m['pretraining']['batch']} frames "
        f"({m['frames_seen']:,} fresh frames), AdamW lr {m['pretraining']['lr']} cosine, seed {m['pretraining']['seed']}.",
        f"- Data: {m['data']}.",
        f"- Hardware and time: {m['hardware']}, {m['wall_minutes']} min.",
        f"- Loss: {m['first_loss']:.4f} at step 1 -> {m['final_loss']:.4f} (mean of the last 50 steps); "
        f"curve in `{m['loss_curve']}`. Per view at the end (1.0 = predicting the batch mean): "
        + ", ".join(f"{k} {v:.3f}" for k, v in m.get("final_view_losses", {}).items()) + ".",
        f"- Reproduce: `{m['command']}`",
    ]
    probe = m.get("probe")
    if probe:
        lines += [
            "",
            "## Linear probe (is the pre-training real?)",
            "",
            f"Logistic regression on mean-pooled frozen tokens at exit {probe['exit']}, "
            f"{probe['train']} train / {probe['test']} test frames per task. Command: `{probe['command']}`",
            "",
            "| task | pre-trained | random init | gain (points) |",
            "|---|---|---|---|",
        ]
        for task, r in probe["tasks"].items():
            lines.append(f"| {task} | {100 * r['pretrained']:.1f} % | {100 * r['random']:.1f} % | "
                         f"{100 * (r['pretrained'] - r['random']):+.1f} |")
    return "\n".join(lines) + "\n"
