"""compnet.nn.CompositionalLayer: exact pieces at construction, the closed form, release() keeping the function,
state_dict in both modes, gradients in both modes, stacked trials, errors, torch.compile and the docstring."""

import doctest
import io
import re
from pathlib import Path

import pytest
import torch

import compnet.nn
from compnet.model import closed_form
from compnet.nn import FREE, CompositionalLayer
from compnet.pieces import count_linear_pieces

f64 = torch.float64


def _layer(seed: int = 0, **kw) -> CompositionalLayer:
    kw = {"depth": 4, "blocks": 5, "dtype": f64} | kw
    return CompositionalLayer(kw.pop("n", 7), kw.pop("out", 3), generator=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_every_block_has_exactly_2_to_the_depth_pieces_at_construction(depth, dtype):
    layer = _layer(depth=depth, blocks=6, dtype=dtype)
    assert [count_linear_pieces(layer.block_sequential(k)) for k in range(6)] == [2**depth] * 6


@pytest.mark.parametrize("input_map", ["sigmoid", "affine"])
def test_the_layer_is_its_closed_form(input_map):
    layer = _layer(input_map=input_map, depth=5)
    x = 0.3 * torch.randn(400, 7, generator=torch.Generator().manual_seed(1), dtype=f64)
    z = x @ layer.proj_weight.T + layer.proj_bias
    u = torch.sigmoid(z) if input_map == "sigmoid" else z + 0.5
    assert ((u >= 0) & (u <= 1)).float().mean() > 0.9  # the test looks where the blocks are curved
    inside = ((u >= 0) & (u <= 1)).all(1)
    with torch.no_grad():
        a = layer.peaks
        s = compnet.model.law_scales(a, layer.s1)
        F = torch.stack([closed_form(u[:, k], a[k], s[k], layer.sign[k]) for k in range(5)], 1)
        want = F @ layer.readout_weight.T + layer.readout_bias
        got = layer(x)
    assert (got - want)[inside].abs().max().item() < 1e-12
    assert inside.sum() > 100


def test_block_weights_are_block_diagonal_and_signs_alternate():
    layer = _layer(blocks=4)
    assert layer.sign.tolist() == [-1.0, 1.0, -1.0, 1.0]
    w_h = layer.block_weights()[2]
    assert w_h.shape == (1, 3, 4, 4, 4)  # [T, d−1, K, 4, 4]: only the within-block weights exist
    assert _layer(blocks=3, sign=1).sign.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("trials", [None, 3])
@pytest.mark.parametrize("input_map", ["sigmoid", "affine"])
def test_release_keeps_the_function_and_swaps_the_parameters(trials, input_map):
    layer = _layer(trials=trials, input_map=input_map)
    x = torch.randn(*(() if trials is None else (3,)), 50, 7, dtype=f64)
    before = layer(x)
    assert {n for n, _ in layer.named_parameters()} >= {"theta", "s1"}
    layer.release()
    assert layer.mode == "free"
    names = {n for n, _ in layer.named_parameters()}
    assert names == {*FREE, "proj_weight", "proj_bias", "readout_weight", "readout_bias"}
    assert torch.equal(layer(x), before)
    with pytest.raises(RuntimeError, match="already free"):
        layer.release()
    with pytest.raises(RuntimeError, match="no peaks"):
        _ = layer.peaks


def test_a_released_block_still_has_its_pieces():
    layer = _layer(depth=3, blocks=4)
    layer.release()
    assert [count_linear_pieces(layer.block_sequential(k)) for k in range(4)] == [8] * 4


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf)


@pytest.mark.parametrize("free", [False, True])
def test_state_dict_round_trips_in_both_modes(free):
    layer = _layer(seed=0)
    if free:
        layer.release()
        with torch.no_grad():
            layer.w_hidden.add_(0.01)  # no longer the encoded weights: the free values themselves must travel
    x = torch.randn(20, 7, dtype=f64)
    other = _layer(seed=1)
    assert not torch.equal(other(x), layer(x))
    other.load_state_dict(_roundtrip(layer.state_dict()))  # a fresh layer switches to free when the state is free
    assert other.mode == layer.mode
    assert torch.equal(other(x), layer(x))


def test_a_free_layer_refuses_a_reparameterised_state():
    free = _layer()
    free.release()
    with pytest.raises(RuntimeError, match="into a new layer"):
        free.load_state_dict(_layer().state_dict())


def test_gradients_reach_the_peaks_when_reparameterised_and_the_raw_weights_when_free():
    layer = _layer(depth=3, blocks=4)
    x = torch.randn(200, 7, dtype=f64)
    layer(x).square().sum().backward()
    for name in ("theta", "s1", "proj_weight", "readout_weight"):
        grad = getattr(layer, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert (layer.theta.grad.abs().sum(1) > 0).all()  # every block's peaks move
    assert (layer.s1.grad != 0).all()
    layer.release()
    layer(x).square().sum().backward()
    for name in FREE:
        grad = getattr(layer, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    before = count_linear_pieces(layer.block_sequential(0))
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    w = layer.w_hidden.detach().clone()
    opt.step()
    assert not torch.equal(layer.w_hidden, w) and before == 8


def test_random_init_is_free_from_the_start_with_the_same_parameters():
    comp, rand = _layer(), _layer(init="random")
    comp.release()
    assert rand.mode == "free"
    shapes = {n: p.shape for n, p in comp.named_parameters()}
    assert {n: p.shape for n, p in rand.named_parameters()} == shapes
    assert rand.w_in.abs().max() <= 1 and rand.w_hidden.abs().max() <= 0.5


@pytest.mark.parametrize("release", [False, True])
def test_stacked_trials_are_independent_layers(release):
    stacked = _layer(trials=3)
    if release:
        stacked.release()
    x = torch.randn(3, 11, 7, dtype=f64)
    y = stacked(x)
    for t in range(3):
        single = _layer(seed=9)
        single.load_state_dict({k: v[t] if k != "sign" else v for k, v in stacked.state_dict().items()})
        assert torch.allclose(single(x[t]), y[t], rtol=0, atol=1e-13)


def test_any_leading_shape_and_a_single_vector():
    layer = _layer()
    x = torch.randn(2, 3, 4, 7, dtype=f64)
    assert layer(x).shape == (2, 3, 4, 3)
    assert torch.allclose(layer(x[0, 0, 0]), layer(x)[0, 0, 0])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n": 0}, "in_features must be a positive int"),
        ({"depth": 0}, "depth must be a positive int"),
        ({"blocks": 2.5}, "blocks must be a positive int"),
        ({"trials": True}, "trials must be a positive int"),
        ({"input_map": "tanh"}, "input_map must be one of"),
        ({"init": "kaiming"}, "init must be one of"),
        ({"sign": "convex"}, "sign must be"),
        ({"sign": [1, -1]}, "sign must be"),
        ({"sign": 0.5}, "sign must be"),
        ({"peak_range": (0.0, 0.5)}, "peak_range must satisfy"),
    ],
)
def test_bad_arguments_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        _layer(**kw)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"expects input \[\.\.\., 7\]; got \(4, 6\)"):
        _layer()(torch.zeros(4, 6, dtype=f64))
    with pytest.raises(ValueError, match=r"with trials=3 the input must be \[3, \.\.\., 7\]"):
        _layer(trials=3)(torch.zeros(2, 5, 7, dtype=f64))
    with pytest.raises(IndexError, match="out of range"):
        _layer().block_sequential(5)


def test_device_and_dtype_moves():
    layer = _layer().to(torch.float32)
    assert layer(torch.randn(3, 7)).dtype == torch.float32 and layer.sign.dtype == torch.float32
    if torch.cuda.is_available():
        gpu = layer.cuda()
        assert gpu(torch.randn(3, 7, device="cuda")).device.type == "cuda"
        gpu.release()
        assert gpu.w_in.device.type == "cuda"


@pytest.mark.parametrize("release", [False, True])
def test_torch_compile_captures_the_whole_layer(release):
    # fullgraph: no graph break in either mode; aot_eager traces forward and backward without a C compiler
    torch._dynamo.reset()
    layer = _layer(depth=3)
    if release:
        layer.release()
    x = torch.randn(16, 7, dtype=f64)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(x), layer(x), rtol=0, atol=1e-12)
    compiled(x).sum().backward()
    assert layer.proj_weight.grad is not None


def test_the_docstring_example_runs():
    result = doctest.testmod(compnet.nn, raise_on_error=False)
    assert result.attempted >= 8 and result.failed == 0


def test_the_readme_snippet_runs_as_written():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    (code,) = re.findall(r"## A drop-in layer.*?```py\n(.*?)```", readme, flags=re.S)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    layer = scope["model"][1]
    assert layer.mode == "free" and scope["model"](torch.rand(5, 8, 8)).shape == (5, 10)
    assert {id(p) for g in scope["opt"].param_groups for p in g["params"]} == {
        id(p) for p in scope["model"].parameters()
    }
