"""Model kinds: typed specs chosen by `model.kind`, one registry of builders, declared capabilities."""

import pytest
import torch
from torch import nn

from phenolab.config import MODEL_KINDS, ConfigError, KindSpec, MLPSpec, RunSpec, config_hash, validate
from phenolab.models import build_model, model_kind, model_kinds, parameter_count, register_model
from phenolab.models.chain import Affine, Elementwise, Scale, layer_chain
from phenolab.models.conv import Conv1dSumPool, ConvSpec
from phenolab.models.hooks import activation_sites, capture
from phenolab.models.matrix_factorization import MatrixFactorization, MatrixFactorizationSpec


def test_every_kind_is_registered_with_its_spec_and_builder():
    kinds = {k.name: k for k in model_kinds()}
    assert {"mlp", "conv", "matrix_factorization"} <= set(kinds)
    assert set(kinds) == set(MODEL_KINDS.kinds())
    assert kinds["mlp"].stackable and kinds["conv"].stackable and not kinds["matrix_factorization"].stackable
    assert kinds["conv"].spec is ConvSpec and kinds["matrix_factorization"].spec is MatrixFactorizationSpec


def test_a_run_spec_validates_each_kind_into_its_own_spec():
    run = validate(RunSpec, {"model": {"kind": "conv", "kernel": 2, "channels": 3}})
    assert isinstance(run.model, ConvSpec) and run.model.channels == 3
    assert validate(RunSpec, run.model_dump(mode="json")) == run  # round trip through JSON
    assert isinstance(validate(RunSpec, {"model": {"width": 7}}).model, MLPSpec)  # mlp is the default kind


def test_the_mlp_hash_is_unchanged_by_the_registry():
    """Stored runs keep their config hash: the MLP spec serializes as before (kind included)."""
    assert config_hash(RunSpec()) == "45da519bbb41ad4e"


@pytest.mark.parametrize("data, message", [
    ({"model": {"kind": "transformerx"}}, "model.kind: must be one of mlp, conv, matrix_factorization"),
    ({"model": {"kind": "conv", "width": 3}}, "model.width: unknown key"),
    ({"model": {"kind": "conv", "kernel": 0}}, "model.kernel: must be > 0"),
    ({"model": {"kind": "matrix_factorization", "rows": 3}}, "model.cols: required but missing"),
    ({"model": 3}, "model: must be a mapping"),
])
def test_bad_model_blocks_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(RunSpec, data)


def test_builders_make_the_kinds_and_check_the_task_shape():
    g = torch.Generator().manual_seed(0)
    conv = build_model(ConvSpec(kernel=2, channels=2), 5, 1, g, torch.float64)
    assert isinstance(conv, Conv1dSumPool) and conv(torch.randn(4, 5, dtype=torch.float64)).shape == (4, 1)
    assert parameter_count(conv) == 2 * 2 + 2
    mf = build_model(MatrixFactorizationSpec(rows=3, cols=4), 2, 1, g, torch.float64)
    assert isinstance(mf, MatrixFactorization) and mf.matrix().shape == (3, 4)
    with pytest.raises(ConfigError, match="model.kernel: must be <= the task's input_dim 2"):
        build_model(ConvSpec(kernel=3), 2, 1, g)
    with pytest.raises(ConfigError, match="matrix_factorization maps"):
        build_model(MatrixFactorizationSpec(rows=3, cols=4), 5, 1, g)
    mlp = build_model(MLPSpec(widths=[4, 3]), 2, 1, g)
    assert parameter_count(mlp) == (2 * 4 + 4) + (4 * 3 + 3) + (3 + 1)


def test_a_new_kind_needs_only_its_spec_and_one_registration():
    class Scaled(KindSpec):
        kind: str = "test_scaled_linear"
        factor: float = 2.0

    def build(spec, d, k, generator, dtype):
        return nn.Linear(d, k, dtype=dtype)

    register_model(Scaled, build)
    try:
        run = validate(RunSpec, {"model": {"kind": "test_scaled_linear", "factor": 3}})
        assert run.model.factor == 3 and model_kind("test_scaled_linear").build is build
        assert isinstance(build_model(run.model, 4, 2, torch.Generator()), nn.Linear)
    finally:
        MODEL_KINDS._kinds.pop("test_scaled_linear")
        from phenolab.models import registry
        registry._KINDS.pop("test_scaled_linear")


def test_the_mlp_declares_its_layer_chain_and_a_user_sequential_is_read_as_one():
    mlp = build_model(MLPSpec(width=5, parametrization="ntk", output_scale=0.5), 3, 2, torch.Generator().manual_seed(1))
    chain = layer_chain(mlp)
    assert [type(op) for op in chain] == [Affine, Elementwise, Affine, Scale]
    assert chain[0].mult == pytest.approx(3 ** -0.5) and chain[2].mult == pytest.approx(5 ** -0.5)
    assert chain[-1].scale == 0.5
    seq = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    assert [type(op) for op in layer_chain(seq)] == [Affine, Elementwise, Affine]
    assert layer_chain(Conv1dSumPool(4, 2)) is None


def test_hook_points_capture_the_mlp_activations():
    mlp = build_model(MLPSpec(widths=[4, 3], activation="relu"), 2, 1, torch.Generator().manual_seed(0))
    assert activation_sites(mlp) == ["hidden.0.hook_pre", "hidden.0.hook_post", "hidden.1.hook_pre",
                                     "hidden.1.hook_post"]
    x = torch.randn(6, 2)
    seen = capture(mlp, x, ["hidden.1.hook_pre", "hidden.1.hook_post"])
    pre = mlp.preactivations(x)
    torch.testing.assert_close(seen["hidden.1.hook_pre"], pre[1])
    torch.testing.assert_close(seen["hidden.1.hook_post"], torch.relu(pre[1]))
    with pytest.raises(KeyError, match="not activation sites"):
        capture(mlp, x, ["blocks.0.attn.hook_pattern"])
    assert not any(p._forward_hooks for p in mlp.modules())  # hooks removed after the pass
