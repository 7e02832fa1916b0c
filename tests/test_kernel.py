"""The fused C kernel against torch's ops and autograd (the reference), and its build."""

import itertools
import math
import platform
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from compnet import kernel
from compnet.commands import check
from compnet.config import ConfigError
from compnet.init import generators, random_weights
from compnet.model import Shapes, encode, forward, law_scales, layer_pairs, layer_tensors
from compnet.stages import mse
from compnet.targets import get_target, train_grid

f64 = torch.float64
needs_kernel = pytest.mark.skipif(
    kernel.unavailable() is not None, reason=f"no fused kernel here: {kernel.unavailable()}"
)


def reference(layers, x, y):
    """torch's forward and autograd: per-trial loss and the gradient of each trial's loss."""
    leaves = [(w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()) for w, b in layers]
    loss = mse(forward(leaves, x), y)
    loss.sum().backward()
    return loss.detach(), [t.grad for t in layer_tensors(leaves)]


def fused(layers, x, y):
    leaves = [(w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()) for w, b in layers]
    loss = kernel.mlp_mse(leaves, x, y)
    loss.sum().backward()
    return loss.detach(), [t.grad for t in layer_tensors(leaves)]


def random_net(depth: int, width: int, T: int, dtype=f64, seed: int = 0):
    shapes = Shapes(depth, width)
    return shapes.split(random_weights("kaiming", shapes, generators(seed, T), dtype)), shapes


@needs_kernel
@pytest.mark.parametrize(
    "widths,groups", [([2, 8, 8, 4, 1], [2, 2, 1, 1]), ([1, 8, 8, 8, 1], [1, 2, 2, 1]), ([3, 12, 12, 1], [3, 3, 1])]
)
@pytest.mark.parametrize("dtype", [f64, torch.float32])
def test_block_diagonal_layers_and_inputs_of_several_dimensions(widths, groups, dtype):
    """A block network's layers (groups of 4×4 diagonal blocks, read from dense storage) on an n-D input: the
    kernel equals torch's ops on the same weights with the off-block entries zeroed, and its gradient is theirs
    restricted to the blocks (0 off them), in float64 to rounding and in float32 to a few ulps."""
    shapes = Shapes.of(widths)
    flat = random_weights("kaiming", shapes, generators(0, 5), dtype)
    layers = shapes.split(flat)
    masks = [torch.block_diag(*[torch.ones(o // g, i // g, dtype=dtype)] * g) for (o, i), g in zip(shapes.dims, groups)]
    x = torch.rand(37, widths[0], generator=torch.Generator().manual_seed(2), dtype=dtype) * 2 - 1
    y = torch.randn(5, 37, generator=torch.Generator().manual_seed(1), dtype=dtype)
    ref = [((w * m).requires_grad_(), b.clone().requires_grad_()) for (w, b), m in zip(layers, masks)]
    ref_loss = mse(forward(ref, x if widths[0] > 1 else x[:, 0]), y)
    ref_loss.sum().backward()
    grads = [torch.empty_like(t) for t in layer_tensors(layers)]
    loss = kernel.mlp_mse_into(layers, x if widths[0] > 1 else x[:, 0], y, grads, groups)
    tol = 1e-12 if dtype == f64 else 1e-5
    assert torch.allclose(loss, ref_loss.detach(), rtol=tol, atol=0)
    for (g_w, g_b), (w, b), m in zip(layer_pairs(grads), ref, masks):
        assert torch.equal(g_w * (1 - m), torch.zeros_like(g_w))  # no gradient off the blocks
        assert torch.allclose(g_w, w.grad * m, rtol=tol, atol=tol * w.grad.abs().max())
        assert torch.allclose(g_b, b.grad, rtol=tol, atol=tol * b.grad.abs().max())
    with pytest.raises(ValueError, match="must divide"):
        kernel.mlp_mse(layers, x if widths[0] > 1 else x[:, 0], y, [5] * len(groups))


@needs_kernel
@pytest.mark.parametrize("depth,width", [(1, 4), (5, 4), (3, 3), (2, 7), (4, 1)])
@pytest.mark.parametrize("points", [1, 5, 16, 37, 500])
def test_loss_and_gradients_equal_autograd_in_float64(depth, width, points):
    """Unrolled shapes (width 4) and the general loops (other widths), point counts below, at and off a
    whole number of SIMD blocks."""
    layers, _ = random_net(depth, width, 6)
    x = train_grid(points, f64)
    y = torch.randn(6, points, generator=torch.Generator().manual_seed(1), dtype=f64)
    loss, grads = fused(layers, x, y)
    ref_loss, ref_grads = reference(layers, x, y)
    assert (loss - ref_loss).abs().max() < 1e-14
    for g, r in zip(grads, ref_grads):
        assert (g - r).abs().max() < 1e-13


@needs_kernel
def test_gradients_written_in_place_equal_autograd():
    """The raw stage's path: no autograd, the gradients written into given tensors (Adam's buffer)."""
    layers, _ = random_net(5, 4, 6)
    x = train_grid(37, f64)
    y = get_target("x11")(x)
    out = [torch.full_like(t, math.nan) for t in layer_tensors(layers)]  # every entry must be written
    loss = kernel.mlp_mse_into(layers, x, y, out)
    ref_loss, ref_grads = reference(layers, x, y.expand(6, -1))
    assert (loss - ref_loss).abs().max() < 1e-14 and not loss.requires_grad
    for g, r in zip(out, ref_grads):
        assert (g - r).abs().max() < 1e-13
    with pytest.raises(ValueError, match="contiguous tensors of the weights' shapes"):
        kernel.mlp_mse_into(layers, x, y, [torch.empty(t.shape[::-1], dtype=f64).transpose(0, -1) for t in out])


@needs_kernel
def test_bound_call_follows_its_tensors_in_place():
    """kernel.bind: the same bits as mlp_mse_into, on tensors changed in place between calls; a fresh loss
    tensor per call; layers it could only read through a copy are refused."""
    layers, shapes = random_net(5, 4, 5, torch.float32)
    x = train_grid(50)
    y = get_target("x3")(x).expand(5, -1)
    grads = [torch.empty(t.shape) for t in layer_tensors(layers)]
    step = kernel.bind(layers, x, y, grads)
    for _ in range(2):
        want = [torch.empty(t.shape) for t in layer_tensors(layers)]
        loss, again = step(), step()
        assert loss is not again and torch.equal(loss, kernel.mlp_mse_into(layers, x, y, want))
        assert all(torch.equal(g, w) for g, w in zip(grads, want))
        layers[2][0].mul_(1.5)  # in place: the bound call sees it
    with pytest.raises(ValueError, match="contiguous"):
        kernel.bind([(w.transpose(1, 2).contiguous().transpose(1, 2), b) for w, b in layers], x, y, grads)


@needs_kernel
def test_float32_agrees_to_rounding():
    layers, _ = random_net(5, 4, 30, torch.float32)
    x = train_grid(500)
    y = get_target("x11")(x).expand(30, -1)  # one target row shared by every trial (stride 0)
    loss, grads = fused(layers, x, y)
    ref_loss, ref_grads = reference(layers, x, y)
    assert torch.allclose(loss, ref_loss, rtol=1e-5, atol=0)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-6)


@needs_kernel
def test_encoded_network_through_the_peaks():
    """Pretraining's layers (views with gaps between trials, one bias tensor shared by hidden layers):
    the gradient reaches the peaks and scales as autograd's does."""
    peaks = (0.25 + 0.5 * torch.rand(4, 6, generator=torch.Generator().manual_seed(2), dtype=f64)).requires_grad_()
    x = train_grid(100, f64)
    y = get_target("x3")(x).expand(4, -1)
    sign = torch.full((4,), -1.0, dtype=f64)
    grads = []
    for loss_fn in (lambda ls: kernel.mlp_mse(ls, x, y), lambda ls: mse(forward(ls, x), y)):
        peaks.grad = None
        loss_fn(encode(peaks, law_scales(peaks), sign)).sum().backward()
        grads.append(peaks.grad.clone())
    assert (grads[0] - grads[1]).abs().max() < 1e-12
    assert grads[0].abs().min() > 0


def plain_forward(layers, x):
    """`forward` without BLAS: z = b + w_0 h_0 + w_1 h_1 + …, every product and sum rounded on its own, in that
    order, as the kernel computes it. torch's baddbmm leaves this to MKL, which (on an FMA machine) fuses
    multiply and add in most columns and not in the last few, so where a pre-activation is exactly 0 its
    sign, and a ReLU's mask with it, depend on the library and the machine."""
    h = x.expand(layers[0][0].shape[0], 1, x.shape[0])
    for i, (w, b) in enumerate(layers):
        z = b.unsqueeze(2)
        for j in range(w.shape[2]):
            z = z + w[:, :, j : j + 1] * h[:, j : j + 1, :]
        h = torch.relu(z) if i < len(layers) - 1 else z
    return h[:, 0, :]


@needs_kernel
@pytest.mark.parametrize("n_peaks", [2, 3, 4, 5])
def test_encoded_network_on_a_dyadic_grid_rounds_and_masks_as_torch(n_peaks):
    """Dyadic peaks on a dyadic grid put pre-activations on 0 up to rounding, where a contracted multiply-add
    (an FMA build) and separately rounded operations choose different ReLU masks: gradients up to 1e-2 apart.
    The kernel rounds as plain IEEE operations and masks as torch's relu backward does (the gradient passes
    where the output is > 0), so it agrees with torch's autograd of the same operations to 1e-13; its loss
    agrees to 1e-13 with `forward` through BLAS too (a mask flipped at a pre-activation of ±1e-18 moves the
    output by ~1e-18, but the gradient by the whole masked term)."""
    peaks = torch.tensor(list(itertools.product([0.25, 0.5, 0.75], repeat=n_peaks)), dtype=f64)
    sign = torch.tensor([(-1.0) ** t for t in range(len(peaks))], dtype=f64)
    layers = [(w.detach(), b.detach()) for w, b in encode(peaks, law_scales(peaks), sign)]
    x = torch.arange(513, dtype=f64) / 512  # k/512: not a whole number of blocks
    y = get_target("x3")(x).expand(len(peaks), -1)
    loss, grads = fused(layers, x, y)
    leaves = [(w.clone().requires_grad_(), b.clone().requires_grad_()) for w, b in layers]
    ref_loss = mse(plain_forward(leaves, x), y)
    ref_loss.sum().backward()
    assert (loss - ref_loss).abs().max() < 1e-13
    for g, r in zip(grads, layer_tensors(leaves)):
        assert (g - r.grad).abs().max() < 1e-13
    assert (loss - reference(layers, x, y)[0]).abs().max() < 1e-13


@needs_kernel
def test_trial_does_not_depend_on_its_batch():
    layers, _ = random_net(5, 4, 7, torch.float32)
    x = train_grid(500)
    y = get_target("x3")(x).expand(7, -1)
    loss, grads = fused(layers, x, y)
    one_loss, one_grads = fused([(w[3:4], b[3:4]) for w, b in layers], x, y[3:4])
    assert torch.equal(loss[3:4], one_loss)
    for g, g1 in zip(grads, one_grads):
        assert torch.equal(g[3:4], g1)


@needs_kernel
def test_nan_stays_in_its_trial():
    """A NaN weight makes that trial's loss NaN (as torch's relu keeps NaN), and no other trial's."""
    layers, _ = random_net(3, 4, 3, torch.float32)
    layers[1][0][1, 2, 0] = math.nan
    x = train_grid(50)
    y = get_target("x3")(x).expand(3, -1)
    loss = kernel.mlp_mse(layers, x, y)
    assert torch.isnan(loss[1]) and torch.isfinite(loss[[0, 2]]).all()
    assert torch.equal(loss[[0, 2]], kernel.mlp_mse([(w[[0, 2]], b[[0, 2]]) for w, b in layers], x, y[[0, 2]]))


@needs_kernel
def test_nan_activation_masked_as_torch_masks_it():
    """torch's relu backward blocks the gradient where the output is <= 0, so a NaN output passes it: the
    same entries of the gradient are NaN in both engines."""
    layers, _ = random_net(3, 4, 2)
    layers[1][1][0, 2] = math.nan  # one hidden neuron of trial 0 is NaN at every point
    x = train_grid(20, f64)
    y = torch.zeros(2, 20, dtype=f64)
    (loss, grads), (ref_loss, ref_grads) = fused(layers, x, y), reference(layers, x, y)
    torch.testing.assert_close(loss, ref_loss, equal_nan=True, rtol=0, atol=1e-14)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, equal_nan=True, rtol=0, atol=1e-13)


@needs_kernel
def test_without_gradients_the_same_loss():
    layers, _ = random_net(5, 4, 5)
    x = train_grid(64, f64)
    y = get_target("sin")(x).expand(5, -1)
    with torch.no_grad():
        plain = kernel.mlp_mse(layers, x, y)
    assert torch.equal(plain, fused(layers, x, y)[0])


@needs_kernel
def test_weighted_losses_scale_the_gradient():
    """backward multiplies each trial's gradient by its upstream weight (Adam only ever sends 0 or 1)."""
    layers, _ = random_net(3, 4, 4)
    x = train_grid(30, f64)
    y = get_target("x3")(x)
    weights = torch.tensor([0.5, -2.0, 0.0, 3.0], dtype=f64)
    grads = []
    for loss_fn in (kernel.mlp_mse, lambda ls, x, y: mse(forward(ls, x), y)):
        leaves = [(w.clone().requires_grad_(), b.clone().requires_grad_()) for w, b in layers]
        (loss_fn(leaves, x, y) * weights).sum().backward()
        grads.append([t.grad for t in layer_tensors(leaves)])
    for g, r in zip(*grads):
        assert (g - r).abs().max() < 1e-13
    assert grads[0][0][2].abs().max() == 0 and grads[0][0][3].abs().max() > 0


@needs_kernel
def test_padding_points_add_nothing_not_even_nan():
    """Points that overflow only where the last SIMD block is padded (here: x = 0, not a training point)
    must not turn a finite gradient into NaN."""
    # h1 = relu(1e308 (1 − x)), h2 = relu(10 h1): 0 at the points, inf at x = 0; f = h2 + 1
    w = [torch.tensor([[[v]]], dtype=f64) for v in (-1e308, 10.0, 1.0)]
    b = [torch.tensor([[v]], dtype=f64) for v in (1e308, 0.0, 1.0)]
    x = torch.tensor([1.0, 1.5, 2.0], dtype=f64)
    layers = list(zip(w, b))
    loss, grads = fused(layers, x, torch.zeros(1, 3, dtype=f64))
    ref_loss, ref_grads = reference(layers, x, torch.zeros(1, 3, dtype=f64))
    assert torch.equal(loss, ref_loss)
    for g, r in zip(grads, ref_grads):
        assert torch.equal(g, r)


@needs_kernel
def test_what_torch_would_broadcast_or_refuse():
    layers, _ = random_net(2, 4, 3)
    x = train_grid(9, f64)
    y = torch.randn(9, dtype=f64)
    assert torch.equal(kernel.mlp_mse(layers, x, y), kernel.mlp_mse(layers, x, y.expand(3, 9)))  # [N] broadcasts
    assert torch.equal(kernel.mlp_mse(layers, x, y[None]), kernel.mlp_mse(layers, x, y.expand(3, 9)))
    with pytest.raises(RuntimeError):
        kernel.mlp_mse(layers, x, torch.zeros(3, 4, dtype=f64))  # too few targets
    with pytest.raises(ValueError, match="do not chain for 3 trials"):
        kernel.mlp_mse([layers[0], (layers[1][0][:1], layers[1][1][:1]), layers[2]], x, y)
    with pytest.raises(ValueError, match="n inputs to 1 output"):
        kernel.mlp_mse(layers[1:], x, y)
    with pytest.raises(ValueError, match="n inputs to 1 output"):
        kernel.mlp_mse(layers, x[None], y)
    with pytest.raises(TypeError, match="float32 or float64"):
        kernel.mlp_mse([(w.float(), b.float()) for w, b in layers], x, y)
    with pytest.raises(ValueError, match="weights only"):
        kernel.mlp_mse(layers, x, y.clone().requires_grad_())


@needs_kernel
def test_describe_says_how_the_numbers_were_made():
    d = kernel.describe()
    lib = kernel.library()
    assert (d["lanes_f32"], d["lanes_f64"]) == (lib.mlp_mse_f32_lanes(), lib.mlp_mse_f64_lanes()) == (8, 4)
    assert d["flags"] == " ".join(kernel.FLAGS) and "-ffp-contract=off" in d["flags"]
    cc = d["cc_command"].split()
    assert d["cc"] == subprocess.run([*cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert d["unavailable"] is None and (d["cpu"] is None or d["cpu"].strip())


def test_describe_without_a_compiler(no_compiler):
    d = kernel.describe()
    assert d["lanes_f32"] is None and "no-such-cc" in d["unavailable"]


def summed_in_lanes(x, y, w, b, lanes):
    """A one-layer net's loss and bias gradient as kernel.c sums them, in numpy float32: per lane over the
    blocks, then the lanes in order (the loss in double)."""
    n = len(x)
    pad = -n % lanes
    x = np.concatenate([x, np.repeat(x[-1:], pad)]).reshape(-1, lanes)
    r = ((b + np.float32(0)) + w * x) - np.concatenate([y, np.zeros(pad, np.float32)]).reshape(-1, lanes)
    r[-1, lanes - pad :] = 0
    sse, ab = np.zeros(lanes, np.float32), np.zeros(lanes, np.float32)
    for k in range(len(r)):
        sse = sse + r[k] * r[k]
        ab = ab + r[k] * (np.float32(2) / np.float32(n))
    loss, grad = 0.0, np.float32(0)
    for v in range(lanes):
        loss, grad = loss + float(sse[v]), grad + ab[v]
    return np.float32(loss / n), grad


@needs_kernel
def test_sums_run_in_blocks_of_the_described_lanes():
    """The lane count is the order of the sums: the kernel's float32 loss and bias gradient are bit for bit
    those summed in blocks of describe()'s lanes, and not those of another block size."""
    gen = np.random.default_rng(0)
    x = gen.random(499, dtype=np.float32)
    y = (gen.standard_normal(499) * 10 ** gen.uniform(-3, 3, 499)).astype(np.float32)  # rounding in every sum
    w, b = np.float32(1.7), np.float32(-0.3)
    layers = [(torch.tensor([[[w]]]), torch.tensor([[b]]))]
    loss, grads = fused(layers, torch.from_numpy(x), torch.from_numpy(y)[None])
    got = (loss.item(), grads[1].item())
    assert got == summed_in_lanes(x, y, w, b, kernel.describe()["lanes_f32"])
    assert all(got != summed_in_lanes(x, y, w, b, lanes) for lanes in (4, 16))


GENERIC = ["-march=x86-64" if f == "-march=native" else f for f in kernel.FLAGS]  # SSE2 only


@pytest.fixture(scope="module")
def native_and_generic(tmp_path_factory):
    """kernel.c built for this CPU and for any x86-64, each into its own cache."""
    if kernel.unavailable() is not None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs a C compiler for x86-64")
    root = tmp_path_factory.mktemp("builds")
    native, generic = kernel._load(kernel.FLAGS, root / "native"), kernel._load(GENERIC, root / "generic")
    assert native.flags == kernel.FLAGS and generic.flags == GENERIC
    return native, generic


def with_build(monkeypatch, built, fn, *args):
    monkeypatch.setattr(kernel, "_outcome", lambda: built)
    return fn(*args)


def assert_same_bits(monkeypatch, builds, layers, x, y):
    (loss, grads), (loss2, grads2) = [with_build(monkeypatch, b, fused, layers, x, y) for b in builds]
    assert torch.equal(loss, loss2)
    for g, g2 in zip(grads, grads2):
        assert torch.equal(g, g2)


@pytest.mark.parametrize("dtype", [torch.float32, f64])
@pytest.mark.parametrize("depth,width", [(1, 4), (5, 4), (3, 3), (2, 7)])
@pytest.mark.parametrize("points", [1, 5, 37, 500])
def test_native_build_computes_the_generic_builds_bits(monkeypatch, native_and_generic, dtype, depth, width, points):
    """The numbers do not depend on the x86-64 machine: -march=native (here AVX2 and FMA) and plain SSE2
    give the same bits, since the block size, the order of every sum and the roundings are fixed."""
    layers, _ = random_net(depth, width, 5, dtype, seed=depth * 100 + points)
    x = train_grid(points, dtype)
    y = torch.randn(5, points, generator=torch.Generator().manual_seed(points), dtype=dtype)
    assert_same_bits(monkeypatch, native_and_generic, layers, x, y)


@pytest.mark.parametrize("dtype", [torch.float32, f64])
@pytest.mark.parametrize("points", [1, 5, 37, 500])
def test_native_build_computes_the_generic_builds_bits_on_encoded_networks(
    monkeypatch, native_and_generic, dtype, points
):
    gen = torch.Generator().manual_seed(3)
    random_peaks = 0.25 + 0.5 * torch.rand(8, 6, generator=gen, dtype=dtype)
    dyadic_peaks = torch.tensor(list(itertools.product([0.25, 0.5, 0.75], repeat=4)), dtype=dtype)
    for peaks in (random_peaks, dyadic_peaks):
        sign = torch.tensor([(-1.0) ** t for t in range(len(peaks))], dtype=dtype)
        layers = [(w.detach(), b.detach()) for w, b in encode(peaks, law_scales(peaks), sign)]
        x = train_grid(points, dtype)
        assert_same_bits(monkeypatch, native_and_generic, layers, x, get_target("x3")(x).expand(len(peaks), -1))


def test_native_build_has_no_fma(native_and_generic):
    """No FMA instruction, from contraction, intrinsics or vector lowering (where objdump can tell)."""
    native, generic = native_and_generic
    if shutil.which("objdump") is None:
        pytest.skip("no objdump here")
    code = subprocess.run(["objdump", "-d", str(native.path)], capture_output=True, text=True, check=True).stdout
    assert "ymm" in code or "avx" not in Path("/proc/cpuinfo").read_text()  # the native build is not SSE2's
    assert not re.search(r"\bv?f(n)?m(add|sub)", code)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A new process's view of the kernel, with an empty cache under tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kernel._outcome.cache_clear()
    yield tmp_path / "cache" / "compnet"
    kernel._outcome.cache_clear()


@pytest.fixture
def no_compiler(monkeypatch, fresh, tmp_path):
    """A machine whose C compiler is missing."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))


def test_without_a_compiler_auto_falls_back_and_fused_is_refused(no_compiler, compose):
    def cfg_for(engine: str):
        return compose(f"engine={engine}")

    why = kernel.unavailable()
    assert why is not None and "no-such-cc" in why
    assert kernel.resolve("auto") == "torch" and kernel.resolve("torch") == "torch"
    check(cfg_for(engine="auto"), "train")  # falls back: no error
    with pytest.raises(ConfigError, match="engine=fused: the kernel does not build here.*no-such-cc"):
        check(cfg_for(engine="fused"), "train")


def test_broken_source_is_reported_once_with_the_compilers_message(monkeypatch, tmp_path, fresh):
    if shutil.which("cc") is None:
        pytest.skip("no cc here")
    bad = tmp_path / "kernel.c"
    bad.write_text("this is not C;\n")
    monkeypatch.setattr(kernel, "SOURCE", bad)
    calls = []
    run = subprocess.run
    monkeypatch.setattr(kernel.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or run(cmd, **kw))
    why = kernel.unavailable()
    assert "could not compile kernel.c" in why and "error" in why
    assert kernel.unavailable() == why and kernel.resolve("auto") == "torch"
    assert len(calls) == 3  # --version, then with and without -march=native; never again in this process
    assert not list(fresh.glob("*"))  # no half-built file left behind


def test_an_unwritable_cache_falls_back_to_torch(monkeypatch, fresh):
    if shutil.which("cc") is None:
        pytest.skip("no cc here: the kernel is unavailable for another reason")
    monkeypatch.setenv("XDG_CACHE_HOME", "/dev/null/cache")  # not a directory, whoever runs the tests
    why = kernel.unavailable()
    assert why is not None and "/dev/null/cache" in why
    assert kernel.resolve("auto") == "torch"


@needs_kernel
def test_cc_may_carry_arguments(monkeypatch, fresh):
    monkeypatch.setenv("CC", "cc -O2")  # as in CC="ccache gcc"
    assert kernel.unavailable() is None


@needs_kernel
def test_builds_once_into_the_cache(fresh):
    kernel.library()
    built = list(fresh.glob("kernel-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    kernel._outcome.cache_clear()
    kernel.library()  # a new process: finds the cached build
    assert built[0].stat().st_mtime_ns == stamp and len(list(fresh.iterdir())) == 1


@needs_kernel
def test_cache_key_covers_all_of_cc(monkeypatch, fresh):
    """CC's arguments change the build ("cc -ffp-contract=fast"), so they are part of its cache key."""
    for cc in ("cc", "cc -O2"):
        monkeypatch.setenv("CC", cc)
        kernel._outcome.cache_clear()
        kernel.library()
    assert len(list(fresh.glob("kernel-*.so"))) == 2
