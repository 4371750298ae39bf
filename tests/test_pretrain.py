import json

import pytest
import torch

from xapp.model import load_encoder
from xapp.model.checkpoint import DEFAULT_ENCODER
from xapp.model.config import EncoderConfig
from xapp.train.export import export_encoder, read_export_manifest, render_card, verify_manifest
from xapp.train.pretrain import PretrainConfig, pretrain

TINY = PretrainConfig(encoder=EncoderConfig(dim=32, depth=2, heads=2), steps=4, batch=12, warmup=2,
                      decoder_dim=16, decoder_depth=1, checkpoint_every=2, seed=3)


def weights(encoder):
    return {k: v.clone() for k, v in encoder.state_dict().items()}


def test_same_seed_same_weights_and_a_different_seed_differs(tmp_path):
    a, state_a = pretrain(TINY, tmp_path / "a", device="cpu", progress=False)
    b, state_b = pretrain(TINY, tmp_path / "b", device="cpu", progress=False)
    assert state_a["losses"] == state_b["losses"]
    for key, value in weights(a).items():
        torch.testing.assert_close(weights(b)[key], value, rtol=0, atol=0)
    c, state_c = pretrain(PretrainConfig(**{**TINY.__dict__, "seed": 4}), tmp_path / "c", device="cpu", progress=False)
    assert state_c["losses"] != state_a["losses"]


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    whole, state_whole = pretrain(TINY, tmp_path / "whole", device="cpu", progress=False)
    _, first = pretrain(TINY, tmp_path / "split", device="cpu", progress=False, stop_after=2)
    assert first["step"] == 2
    resumed, state = pretrain(TINY, tmp_path / "split", device="cpu", progress=False)
    assert state["step"] == 4 and state["losses"] == state_whole["losses"]
    for key, value in weights(whole).items():
        torch.testing.assert_close(weights(resumed)[key], value, rtol=0, atol=0)
    assert (tmp_path / "split" / "loss.png").stat().st_size > 0


def test_frames_made_on_worker_processes_train_the_same_weights(tmp_path):
    threaded, state_threaded = pretrain(TINY, tmp_path / "thread", device="cpu", progress=False)
    pooled, state_pooled = pretrain(TINY, tmp_path / "pool", device="cpu", progress=False, data_workers=2)
    assert state_pooled["losses"] == state_threaded["losses"]
    for key, value in weights(threaded).items():
        torch.testing.assert_close(weights(pooled)[key], value, rtol=0, atol=0)


def test_a_time_budget_fixes_the_steps_after_the_warmup_and_records_them(tmp_path):
    cfg = PretrainConfig(**{**TINY.__dict__, "steps": 10_000, "warmup": 20})
    _, state = pretrain(cfg, tmp_path / "run", device="cpu", progress=False, time_budget_s=0.5)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["steps"]
    assert 20 <= state["step"] == state["steps"] == recorded < 10_000
    resumed = PretrainConfig(**{**cfg.__dict__, "steps": recorded})
    with pytest.raises(ValueError, match="fresh run"):
        pretrain(resumed, tmp_path / "run", device="cpu", progress=False, time_budget_s=5)


def test_resume_with_another_config_is_refused(tmp_path):
    pretrain(TINY, tmp_path / "run", device="cpu", progress=False, stop_after=2)
    with pytest.raises(ValueError, match="different config"):
        pretrain(PretrainConfig(**{**TINY.__dict__, "lr": 1e-3}), tmp_path / "run", device="cpu", progress=False)


def test_export_writes_weights_manifest_and_card(tmp_path):
    encoder, state = pretrain(TINY, tmp_path / "run", device="cpu", progress=False)
    out = tmp_path / "assets" / "encoder.safetensors"
    sha = export_encoder(encoder, TINY, state, out, tmp_path / "run", "xapp pretrain --config tiny.yaml")
    manifest = read_export_manifest(out)
    assert manifest["sha256"] == sha and manifest["steps"] == 4 and manifest["config"]["depth"] == 2
    verify_manifest(out)
    assert "xapp pretrain --config tiny.yaml" in (out.parent / "ENCODER_CARD.md").read_text()
    assert load_encoder(out, sha256=sha).cfg == TINY.encoder
    out.write_bytes(out.read_bytes()[:-1] + b" ")
    with pytest.raises(ValueError, match="differs from its manifest"):
        verify_manifest(out)


def test_card_names_the_frame_views_only_when_they_were_trained():
    manifest = {k: v for k, v in read_export_manifest(DEFAULT_ENCODER).items()
                if k not in ("init_from", "earlier_stages")}  # one stage only
    on = {**manifest, "pretraining": {**manifest["pretraining"], "stage": "mae", "frame_weight": 4, "frame_pass": "full"}}
    off = {**manifest, "pretraining": {**manifest["pretraining"], "stage": "mae", "frame_weight": 0}}
    assert "angular spectrum" in render_card(on) and "all tokens" in render_card(on)
    assert "angular spectrum" not in render_card(off)


def test_unknown_setting_in_config_file_is_named(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps({"steps": 3, "learning_rate": 1}))
    with pytest.raises(ValueError, match="learning_rate"):
        PretrainConfig.from_yaml(path)


def test_frame_views_find_the_beam_of_a_plane_wave_and_skip_one_antenna_frames():
    import numpy as np

    from xapp.data.spatial import steering
    from xapp.train.mae import FRAME_BANDS, frame_targets

    rng = np.random.default_rng(0)
    symbols = (rng.standard_normal(64) + 1j * rng.standard_normal(64)).astype(np.complex64)
    beam = 5  # the FFT across antennas peaks at bin b for a phase step of 2*pi*b/16, direction sine b/8
    x = steering(np.array([beam / 8]))[0][:, None] * symbols[None, :]
    array_views = frame_targets(torch.from_numpy(x[None]))
    assert int(array_views[0, FRAME_BANDS:].argmax()) == beam
    single = frame_targets(torch.from_numpy(symbols[None, None]))
    assert torch.isfinite(single[0, :FRAME_BANDS]).all() and torch.isnan(single[0, FRAME_BANDS:]).all()


@pytest.mark.parametrize("frame_pass", ["masked", "full"])
def test_mae_loss_is_finite_on_a_mixed_batch_and_trains_every_frame_readout(frame_pass):
    from xapp.train.pretrain import batch_for_step, build

    cfg = PretrainConfig(**{**TINY.__dict__, "frame_weight": 1.0, "frame_pass": frame_pass})
    model, _ = build(cfg)
    losses = model(batch_for_step(cfg, 0, "cpu"), torch.Generator().manual_seed(0))
    assert {"raw", "frame_spectrum", "frame_spatial", "loss"} <= set(losses)
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert len(model.frame_readouts) == cfg.encoder.depth
    assert all(r.weight.grad is not None and r.weight.grad.abs().sum() > 0 for r in model.frame_readouts)


def test_without_frame_weight_the_mae_has_patch_views_only():
    from xapp.train.pretrain import batch_for_step, build

    model, _ = build(TINY)
    losses = model(batch_for_step(TINY, 0, "cpu"), torch.Generator().manual_seed(0))
    assert len(model.frame_readouts) == 0 and "frame_spatial" not in losses
    patch_views = [v for k, v in losses.items() if k != "loss"]
    torch.testing.assert_close(losses["loss"], torch.stack(patch_views).mean())


def test_unknown_frame_pass_is_named():
    from xapp.train.pretrain import build

    with pytest.raises(ValueError, match="frame_pass"):
        build(PretrainConfig(**{**TINY.__dict__, "frame_weight": 1.0, "frame_pass": "half"}))


def test_mae_runs_under_bf16_autocast():
    """The CUDA path trains under bf16 autocast; CPU autocast exercises the same mixed dtypes."""
    from xapp.train.pretrain import batch_for_step, build

    cfg = PretrainConfig(**{**TINY.__dict__, "frame_weight": 1.0, "frame_pass": "full"})
    model, _ = build(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(batch_for_step(cfg, 0, "cpu"), torch.Generator().manual_seed(0))
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()


def test_exit_aware_terms_train_every_distillation_map_and_array_layout_views_are_finite():
    from xapp.train.pretrain import batch_for_step, build

    cfg = PretrainConfig(**{**TINY.__dict__, "frame_weight": 1.0, "frame_pass": "full", "distill_weight": 1.0,
                            "layer_drop": 0.5})
    assert cfg.encoder.layout == "array"
    model, _ = build(cfg)
    losses = model(batch_for_step(cfg, 0, "cpu"), torch.Generator().manual_seed(0))
    assert {"distill", "relative", "frame_spatial"} <= set(losses) and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert len(model.distill_maps) == cfg.encoder.depth - 1
    assert all(m.weight.grad.abs().sum() > 0 for m in model.distill_maps)


def test_array_token_views_see_the_phase_step_of_a_plane_wave():
    import numpy as np

    from xapp.data.spatial import steering
    from xapp.train.mae import array_token_targets, view_widths

    symbols = np.exp(2j * np.pi * np.random.default_rng(1).random(64)).astype(np.complex64)
    x = torch.from_numpy((steering(np.array([0.25]))[0][:, None] * symbols[None, :])[None])
    views = array_token_targets(x, 16)
    assert views.shape == (1, 64, sum(view_widths(16).values()))
    step = torch.complex(views[0, :, -2], views[0, :, -1])  # phase step across the array: pi * sin(theta)
    torch.testing.assert_close(step.angle(), torch.full((64,), np.pi * 0.25), rtol=0, atol=1e-4)


LABELLED = PretrainConfig(**{**TINY.__dict__, "stage": "labelled", "batch": 12, "lr": 3e-3, "warmup": 1})


def test_labelled_stage_starts_from_the_mae_run_and_learns_every_exit(tmp_path):
    from xapp.train.pretrain import batch_for_step, build

    mae, _ = pretrain(TINY, tmp_path / "mae", device="cpu", progress=False)
    cfg = PretrainConfig(**{**LABELLED.__dict__, "init_from": str(tmp_path / "mae")})
    model, optimizer = build(cfg)
    for key, value in weights(mae).items():
        torch.testing.assert_close(model.encoder.state_dict()[key], value, rtol=0, atol=0)
    batch = batch_for_step(cfg, 0, "cpu")
    assert [task for task, _, _ in batch] == ["modulation", "interference", "beam"]
    generator = torch.Generator().manual_seed(0)
    first = model(batch, generator)
    for _ in range(15):
        loss = model(batch, generator)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last = model(batch, generator)
    for task in ("modulation", "interference", "beam"):
        assert last[f"ce_{task}"] < first[f"ce_{task}"]
    assert all(head.out.weight.grad.abs().sum() > 0 for heads in model.heads.values() for head in heads)


def test_a_stage_started_from_an_exported_encoder_carries_every_earlier_stage_into_its_card(tmp_path):
    pretrain(TINY, tmp_path / "mae", device="cpu", progress=False)
    second_cfg = PretrainConfig(**{**LABELLED.__dict__, "steps": 2, "init_from": str(tmp_path / "mae")})
    second, state = pretrain(second_cfg, tmp_path / "second", device="cpu", progress=False)
    second_file = tmp_path / "second.safetensors"
    export_encoder(second, second_cfg, state, second_file, tmp_path / "second", "xapp pretrain --config two.yaml")
    third_cfg = PretrainConfig(**{**second_cfg.__dict__, "seed": 5, "init_from": str(second_file)})
    third, state = pretrain(third_cfg, tmp_path / "third", device="cpu", progress=False)
    third_file = tmp_path / "assets" / "encoder.safetensors"
    export_encoder(third, third_cfg, state, third_file, tmp_path / "third", "xapp pretrain --config three.yaml")
    earlier = read_export_manifest(third_file)["earlier_stages"]
    assert [e["run"] for e in earlier] == [(tmp_path / "mae").as_posix(), second_file.as_posix()]
    assert [e["pretraining"]["stage"] for e in earlier] == ["mae", "labelled"]
    card = (third_file.parent / "ENCODER_CARD.md").read_text()
    assert "- Stage 1 (" in card and "- Stage 2 (" in card and "- Stage 3: labelled stage" in card


def test_labelled_stage_resumes_to_the_same_result(tmp_path):
    cfg = PretrainConfig(**{**LABELLED.__dict__, "steps": 4, "checkpoint_every": 2, "layer_drop": 0.5})
    _, whole = pretrain(cfg, tmp_path / "whole", device="cpu", progress=False)
    pretrain(cfg, tmp_path / "split", device="cpu", progress=False, stop_after=2)
    _, resumed = pretrain(cfg, tmp_path / "split", device="cpu", progress=False)
    assert resumed["losses"] == whole["losses"]


@pytest.mark.parametrize("task", ["los", "fingerprint"])
def test_unseen_tasks_never_enter_the_labelled_stage(task):
    from xapp.train.pretrain import build

    with pytest.raises(ValueError, match="stay unseen"):
        build(PretrainConfig(**{**LABELLED.__dict__, "labelled_tasks": ("beam", task)}))


def test_layer_dropout_masks_rise_with_depth_and_are_drawn_once_per_step():
    from xapp.train.mae import kept_rows

    depth, rows = 12, 20_000
    keeps = kept_rows(rows, 0.3, depth, torch.Generator().manual_seed(5), torch.device("cpu"))
    assert len(keeps) == depth and all(k.shape == (rows, 1, 1) and k.dtype == torch.bool for k in keeps)
    skipped = [1.0 - k.float().mean().item() for k in keeps]
    for level, share in enumerate(skipped, start=1):  # block l skipped with probability 0.3 * l / 12
        assert abs(share - 0.3 * level / depth) < 0.015, (level, share)
    again = kept_rows(rows, 0.3, depth, torch.Generator().manual_seed(5), torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(keeps, again))  # the step's seed fixes its masks
    assert kept_rows(rows, 0.0, depth, torch.Generator(), torch.device("cpu")) == [None] * depth


def test_batched_exit_heads_equal_each_head_on_its_own_exit():
    from xapp.model.heads import Head, normalised_mean
    from xapp.train.multiexit import exit_logits

    torch.manual_seed(3)
    depth, dim, classes = 5, 16, 7
    heads = [Head(dim, classes) for _ in range(depth)]
    for h in heads:  # trained-looking affine parameters, not the identity they start at
        torch.nn.init.normal_(h.norm.weight), torch.nn.init.normal_(h.norm.bias)
    states = [torch.randn(6, 9, dim) * (k + 1) for k in range(depth)]
    one_by_one = torch.stack([head(state) for head, state in zip(heads, states)])
    batched = exit_logits(heads, torch.stack([normalised_mean(state) for state in states]))
    assert torch.allclose(batched, one_by_one, atol=1e-5)
