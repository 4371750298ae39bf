import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from xapp.model import Encoder, EncoderConfig, Head, WeightsFileError, exit_flops, head_flops, load_encoder, load_head, save_encoder, save_head
from xapp.model.block import attend
from xapp.model.flops import block_flops, patch_embed_flops

SMALL = EncoderConfig(dim=64, depth=4, heads=4)


def frames(b, a, s, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(b, a, s, generator=g), torch.randn(b, a, s, generator=g))


def full_forward_states(encoder, x):
    h, states = encoder.tokens(x), []
    for block in encoder.blocks:
        h = block(h)
        states.append(h)
    return states


def test_attention_in_bf16_on_cpu_is_the_fused_kernels_softmax_within_bf16_rounding():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(5, 4, 65, 32, generator=g) for _ in range(3))
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.equal(attend(q, k, v), reference)  # fp32: the fused kernel itself
    got = attend(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert got.dtype == torch.bfloat16
    assert (got.float() - reference).abs().max() < 0.05  # bf16 keeps 8 bits of mantissa
    assert torch.allclose(got.float(), reference, atol=0.02, rtol=0.02)


@pytest.mark.parametrize("shape", [(1, 1024), (16, 64)])
def test_both_frame_shapes_give_64_tokens_plus_cls(shape):
    encoder = Encoder(SMALL).eval()
    assert encoder.tokens(frames(2, *shape)).shape == (2, 65, 64)


def test_exit_states_equal_full_forward_states():
    torch.manual_seed(0)
    encoder = Encoder(SMALL).eval()
    x = frames(3, 1, 1024)
    with torch.no_grad():
        full = full_forward_states(encoder, x)
        for exits in ([1], [2, 4], [1, 3], [4]):
            states = encoder(x, exits)
            assert sorted(states) == sorted(exits)
            for k, h in states.items():
                torch.testing.assert_close(h, full[k - 1], rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 1024), (16, 64)])
def test_a_frame_reads_the_same_at_any_finite_amplitude(shape):
    """Tokens are of the frame at unit power; squaring a frame peaking past ~1e19 overflowed float32 and
    turned it into zeros, and under ~1e-5 the power's guard bent the scale."""
    torch.manual_seed(0)
    encoder = Encoder(SMALL).eval()
    x = frames(2, *shape) / math.sqrt(2)
    with torch.no_grad():
        want = encoder(x, [2])[2]
        for scale in (1e-30, 1e-6, 1e-3, 1e10, 1e25, 1e37):
            torch.testing.assert_close(encoder(x * scale, [2])[2], want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e37])
def test_power_is_normalised_alike_on_complex_samples_and_on_their_token_values(scale):
    """The patch embedding scales a frame's token values (quicker: real arithmetic, no hypot); the
    side features and the pre-training targets scale complex samples: the same frame either way."""
    from xapp.model.patch import normalise_power, patchify
    x = frames(3, 1, 1024) * scale
    tokens = normalise_power(patchify(x, 16))
    torch.testing.assert_close(tokens, patchify(normalise_power(x), 16), atol=1e-6, rtol=1e-5)
    power = 2 * tokens.square().mean(dim=(1, 2))
    torch.testing.assert_close(power, torch.ones(3), atol=1e-5, rtol=1e-5)


def test_exit_outside_the_encoder_is_refused():
    with pytest.raises(ValueError, match=r"exits must lie in 1\.\.4"):
        Encoder(SMALL)(frames(1, 1, 1024), [5])


def test_default_config_has_about_6_3_million_parameters():
    n = sum(p.numel() for p in Encoder().parameters())
    assert 6.2e6 < n < 6.45e6


@pytest.mark.parametrize("k", [1, 4, 8])
def test_analytic_flops_match_torch_flop_counter(k):
    cfg = EncoderConfig()
    encoder = Encoder(cfg).eval()
    x = frames(2, 1, 1024)
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad(), torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH), \
            FlopCounterMode(display=False) as counter:
        encoder(x, [k])
    counted = counter.get_total_flops() / 2
    assert counted == pytest.approx(exit_flops(cfg, 65)[k - 1], rel=0.02)
    assert exit_flops(cfg)[k - 1] == pytest.approx(patch_embed_flops(cfg, 65) + k * block_flops(cfg, 65))


def test_head_flops_match_torch_flop_counter():
    head = Head(256, 11, pooling="attn", hidden=64).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        head(torch.randn(1, 65, 256))
    assert counter.get_total_flops() == pytest.approx(head_flops(256, 11, 64, "attn", 65), rel=0.02)


def test_encoder_roundtrip_is_safetensors_and_fp16_close(tmp_path):
    encoder = Encoder(SMALL).eval()
    path = tmp_path / "enc.safetensors"
    save_encoder(path, encoder)
    assert path.read_bytes()[8:9] == b"{"  # a safetensors JSON header, not a pickle stream
    loaded = load_encoder(path)
    assert loaded.cfg == SMALL and not any(p.requires_grad for p in loaded.parameters())
    x = frames(2, 16, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, [4])[4], encoder(x, [4])[4], rtol=0.05, atol=0.05)


def test_corrupt_checkpoint_fails_clearly(tmp_path):
    path = tmp_path / "enc.safetensors"
    save_encoder(path, Encoder(SMALL))
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(WeightsFileError, match="enc.safetensors: not a readable safetensors file"):
        load_encoder(path)


def test_mismatched_checkpoint_fails_clearly(tmp_path):
    from safetensors.torch import load_file, save_file

    path = tmp_path / "enc.safetensors"
    save_encoder(path, Encoder(SMALL))
    with open(path, "rb") as fh:
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))["__metadata__"]
    header["config"] = json.dumps(EncoderConfig(dim=64, depth=6, heads=4).to_dict())
    save_file(load_file(str(path)), str(path), metadata=header)
    with pytest.raises(WeightsFileError, match="does not match its config: missing"):
        load_encoder(path)


def test_the_same_weights_give_the_same_bytes(tmp_path):
    encoder = Encoder(SMALL)
    a = save_encoder(tmp_path / "a.safetensors", encoder, steps=3, final_loss=0.5, note="x")
    b = save_encoder(tmp_path / "b.safetensors", encoder, note="x", final_loss=0.5, steps=3)
    assert a == b


def test_pinned_sha256_is_enforced(tmp_path):
    path = tmp_path / "enc.safetensors"
    sha = save_encoder(path, Encoder(SMALL))
    assert load_encoder(path, sha256=sha).cfg == SMALL
    with pytest.raises(WeightsFileError, match="does not match the pinned"):
        load_encoder(path, sha256="0" * 64)


def test_head_roundtrip_and_wrong_file(tmp_path):
    head = Head(64, 6, pooling="attn", hidden=32)
    sha = save_head(tmp_path / "h.safetensors", head, {"task": "interference", "exit": 2})
    loaded, meta = load_head(tmp_path / "h.safetensors", sha256=sha)
    assert meta["task"] == "interference" and meta["exit"] == 2
    h = torch.randn(3, 65, 64)
    torch.testing.assert_close(loaded(h), head(h))
    save_encoder(tmp_path / "enc.safetensors", Encoder(SMALL))
    with pytest.raises(WeightsFileError, match="not a head file"):
        load_head(tmp_path / "enc.safetensors")


def test_head_is_under_one_percent_of_the_encoder():
    encoder_params = sum(p.numel() for p in Encoder().parameters())
    for hidden in (0, 128):
        head = Head(256, 16, pooling="attn", hidden=hidden)
        assert sum(p.numel() for p in head.parameters()) < 0.01 * encoder_params


def test_array_tokens_span_the_array_at_one_instant_and_one_antenna_frames_keep_time_patches():
    from xapp.model.patch import array_tokens, patchify

    x = frames(2, 16, 64)
    tokens = array_tokens(x, 16)
    assert tokens.shape == (2, 64, 32)
    torch.testing.assert_close(tokens[1, 5, :16], x[1, :, 5].real)  # token 5: every antenna at instant 5
    torch.testing.assert_close(tokens[1, 5, 16:], x[1, :, 5].imag)
    single = frames(2, 1, 1024)
    torch.testing.assert_close(array_tokens(single, 16), patchify(single, 16))
    with pytest.raises(ValueError, match="antennas must divide 16"):
        array_tokens(frames(1, 3, 64), 16)


def test_array_layout_batches_both_shapes_through_one_trunk_with_its_own_array_projection():
    encoder = Encoder(SMALL).eval()
    assert encoder.cfg.layout == "array" and encoder.patch_embed.array_proj is not None
    single, array = frames(2, 1, 1024), frames(2, 16, 64)
    with torch.no_grad():
        h = encoder.with_cls(torch.cat([encoder.patch_embed(single), encoder.patch_embed(array)]))
        for block in encoder.blocks:
            h = block(h)
        torch.testing.assert_close(h[2:], encoder(array, [4])[4], rtol=1e-5, atol=1e-5)
    antenna = Encoder(EncoderConfig(dim=64, depth=4, heads=4, layout="antenna"))
    assert antenna.patch_embed.array_proj is None
    with pytest.raises(ValueError, match="layout"):
        EncoderConfig(layout="diagonal")


def test_a_checkpoint_without_a_layout_loads_as_per_antenna_patches(tmp_path):
    from safetensors.torch import load_file, save_file

    path = tmp_path / "old.safetensors"
    save_encoder(path, Encoder(EncoderConfig(dim=64, depth=4, heads=4, layout="antenna")))
    with open(path, "rb") as fh:
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))["__metadata__"]
    config = json.loads(header["config"])
    del config["layout"]  # as written before the field existed
    header["config"] = json.dumps(config)
    save_file(load_file(str(path)), str(path), metadata=header)
    assert load_encoder(path).cfg.layout == "antenna"
