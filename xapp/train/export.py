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

MIXTURE = ("the domain-randomised generators of xapp/data (CARD.md): modulation (11 RadioML classes), "
           "interference (6 interferer kinds over a desired signal), beam (16-antenna ULA pilots through "
           "clustered multipath); fresh every step; fingerprint and los are never seen")


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
        **_stage_record(cfg.as_dict(), state),
        "data": MIXTURE,
        "first_loss": state["losses"][0],
        "command": command,
        "loss_curve": "ENCODER_LOSS.png",
    }
    if cfg.init_from:
        manifest["earlier_stages"] = earlier_stages(Path(cfg.init_from))
    if manifest_path(out).exists() and read_export_manifest(out).get("sha256") == sha:
        previous = read_export_manifest(out)  # same weights: keep the probe measured on them
        manifest.update({k: previous[k] for k in ("probe",) if k in previous})
    src_plot = Path(run) / "loss.png"
    if src_plot.exists():
        out.with_name("ENCODER_LOSS.png").write_bytes(src_plot.read_bytes())
    write_export_manifest(out, manifest)
    return sha


def earlier_stages(source: Path) -> list[dict]:
    """What the stages before this one did, first to last: from a run directory its own record, from an
    exported encoder the stages its manifest records plus its own."""
    if source.is_dir():
        return [_earlier_stage(source)] if (source / "state.json").exists() else []
    if not manifest_path(source).exists():
        return []
    m = read_export_manifest(source)
    return [*stages_before(m), {"run": source.as_posix(), **{k: m[k] for k in STAGE_KEYS if k in m}}]


def stages_before(manifest: dict) -> list[dict]:
    """The earlier stages a manifest records (older manifests held one, as `init_from`)."""
    if "earlier_stages" in manifest:
        return manifest["earlier_stages"]
    return [manifest["init_from"]] if manifest.get("init_from") else []


def _earlier_stage(run: Path) -> dict:
    """What the run this one started from did: its settings, length and final losses."""
    state = json.loads((run / "state.json").read_text())
    config = json.loads((run / "config.json").read_text())
    return {"run": run.as_posix(), **_stage_record(config, state)}


STAGE_KEYS = ("pretraining", "steps", "frames_seen", "wall_minutes", "hardware", "final_loss", "final_view_losses")


def _stage_record(config: dict, state: dict) -> dict:
    """One stage's settings, length and final losses (STAGE_KEYS), from its run's config and state."""
    return {"pretraining": {k: v for k, v in config.items() if k != "encoder"},
            "steps": state["step"], "frames_seen": state["step"] * config["batch"],
            "wall_minutes": round(state["wall_s"] / 60, 1), "hardware": _hardware(state.get("device", "cpu")),
            "final_loss": _final_loss(state["losses"]),
            "final_view_losses": {name: _final_loss(v) for name, v in state.get("view_losses", {}).items()}}


def _hardware(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _final_loss(losses: list[float]) -> float:
    tail = losses[-50:]
    return round(sum(tail) / len(tail), 5)


def write_export_manifest(weights: str | Path, manifest: dict) -> None:
    manifest_path(weights).write_text(json.dumps(manifest, indent=1) + "\n")
    card_path(weights).write_text(render_card(manifest))


def read_export_manifest(weights: str | Path) -> dict:
    return json.loads(manifest_path(weights).read_text())


def verify_manifest(weights: str | Path) -> None:
    manifest = read_export_manifest(weights)
    actual = sha256_file(weights)
    if actual != manifest["sha256"]:
        raise ValueError(f"{weights}: sha256 {actual} differs from its manifest's {manifest['sha256']}")


def _frame_views(p: dict) -> str:
    if not p.get("frame_weight"):
        return ""
    tokens = "all tokens" if p.get("frame_pass") == "full" else "the visible tokens"
    return (f", plus (weight {p['frame_weight']}) two views of the whole frame read linearly from every exit's "
            f"mean-pooled state over {tokens}: its 16-band log spectrum and its 16-beam log angular spectrum")


def _exit_terms(p: dict) -> str:
    terms = []
    if p.get("distill_weight"):
        terms.append(f"self-distillation (weight {p['distill_weight']}: every shallower exit's pooled state "
                     f"predicts the deepest's)")
    if p.get("layer_drop"):
        terms.append(f"layer dropout rising with depth to {p['layer_drop']} at the last block")
    return "; " + ", ".join(terms) if terms else ""


def _tokens(c: dict) -> str:
    if c.get("layout", "antenna") == "array":
        return (f"tokens of {2 * c['patch']} real values: one antenna's {c['patch']}-sample time patch, or for "
                f"array frames all antennas at {c['patch']} // antennas instants (16x64: one instant per token), "
                f"each kind through its own projection")
    return f"{c['patch']}-sample I/Q patches per antenna"


def _stage_line(p: dict, steps: int, frames: int, hardware: str, minutes: float) -> str:
    schedule = (f"{steps} steps of {p['batch']} frames ({frames:,} fresh frames), AdamW lr {p['lr']} cosine, "
                f"seed {p['seed']}; {hardware}, {minutes} min")
    if p.get("stage") == "labelled":
        return (f"labelled stage: a linear head per task at every exit, mean cross-entropy over all exits, on "
                f"{', '.join(p['labelled_tasks'])} (los and fingerprint never seen){_exit_terms(p)}; {schedule}")
    return (f"masked autoencoder, {int(p['mask_ratio'] * 100)} % of tokens masked, decoder dim {p['decoder_dim']} x "
            f"{p['decoder_depth']} blocks, standardised MSE on five views of the masked tokens (raw I/Q, log power, "
            f"4-band log spectrum, envelope spread, relative phase){_frame_views(p)}{_exit_terms(p)}; {schedule}")


def _losses(m: dict) -> str:
    return (f"{m['final_loss']:.4f} (mean of the last 50 steps); per term at the end: "
            + ", ".join(f"{k} {v:.3f}" for k, v in m.get("final_view_losses", {}).items()))


def render_card(m: dict) -> str:
    c = m["config"]
    earlier = stages_before(m)
    stages = [f"- Stage {i} (`{e['run']}`): " + _stage_line(e["pretraining"], e["steps"], e["frames_seen"],
                                                           e["hardware"], e["wall_minutes"])
              + f". Loss at the end: {_losses(e)}." for i, e in enumerate(earlier, start=1)]
    label = f"Stage {len(earlier) + 1}" if earlier else "Pre-training"
    runs = ", ".join(f"`{e['run']}`" for e in earlier)
    stages.append(f"- {label}: " + _stage_line(m["pretraining"], m["steps"], m["frames_seen"], m["hardware"],
                                               m["wall_minutes"]) + f". Loss: {m['first_loss']:.4f} at step 1 -> "
                  f"{_losses(m)}; curve in `{m['loss_curve']}`.")
    lines = [
        "# Encoder model card",
        "",
        "Generated from `encoder.json` by `xapp pretrain --export` and `xapp probe --card`; do not edit by hand.",
        "",
        f"- Architecture: ViT over {_tokens(c)}; dim {c['dim']}, {c['depth']} blocks, {c['heads']} heads, "
        f"MLP ratio {c['mlp_ratio']}; {m['parameters']:,} parameters; CLS + 64 tokens for 1x1024 and 16x64 frames. "
        f"Why this shape and these tokens: `docs/pretraining.md`.",
        f"- Weights: `{m['file']}`, fp16, {m['bytes'] / 1e6:.1f} MB, sha256 `{m['sha256']}`.",
        *stages,
        f"- Data: {m['data']}.",
        f"- Reproduce: `{m['command']}`" + (f" after the earlier stages ({runs})" if earlier else ""),
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
