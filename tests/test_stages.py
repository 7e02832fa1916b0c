"""The two training stages against independent per-trial references (`compnet.reference`): a plain
nn.Sequential with its own torch.optim.Adam, and Adam through the closed form."""

import math

import pytest
import torch

from compnet.init import generators, random_weights
from compnet.methods import PEAK_CLAMP
from compnet.model import Reparam, Shapes, closed_form, law_scales, layer_tensors
from compnet.pieces import trial_pieces
from compnet.reference import free_pretrain_loop, pretrain_loop, raw_loop
from compnet.stages import pretrain, train_raw
from compnet.targets import get_target, train_grid

f64 = torch.float64


def _peaks(T: int, n: int, seed: int, low: float = 0.25, high: float = 0.75) -> torch.Tensor:
    return low + (high - low) * torch.rand(T, n, generator=torch.Generator().manual_seed(seed), dtype=f64)


def test_raw_stage_equals_plain_loop(engine):
    shapes, x = Shapes(5), train_grid(64, f64)
    y = get_target("x3")(x)
    start = random_weights("kaiming", shapes, generators(0, 3), f64)
    fit = train_raw(shapes, start, x, y.expand(3, -1), 50, 1e-3, fused=engine == "fused")
    ref = raw_loop(start, shapes, x, y, 50, 1e-3)
    assert (fit.params[0] - ref).abs().max() < 1e-10
    assert (fit.params[0] - start).abs().max() > 1e-3  # it did train
    assert not fit.diverged.any()


def test_pretraining_equals_closed_form_loop(engine):
    x = train_grid(64, f64)
    y = get_target("x11")(x)
    peaks = _peaks(3, 6, 1)
    sign = torch.full((3,), -1.0, dtype=f64)
    free = torch.zeros(3, dtype=torch.bool)
    fit = pretrain(Reparam(), peaks, free, sign, x, y.expand(3, -1), 50, 1e-3, fused=engine == "fused")
    for t in range(3):
        theta, s1 = pretrain_loop(peaks[t], -1.0, x, y, 50, 1e-3)
        assert (fit.params[0][t] - theta).abs().max() < 1e-10
        assert abs(fit.params[1][t] - s1) < 1e-12
    assert not torch.equal(fit.params[0], peaks)  # the peaks did move


def test_not_enforced_equals_free_scales_loop(engine):
    """Differentiability not enforced: every scale its own parameter, against Adam on (θ, s) through the
    closed form; the scales leave the law."""
    x = train_grid(64, f64)
    y = get_target("sin")(x)
    peaks = _peaks(3, 5, 2)
    sign = torch.full((3,), 1.0, dtype=f64)
    free = torch.ones(3, dtype=torch.bool)
    fit = pretrain(Reparam(), peaks, free, sign, x, y.expand(3, -1), 60, 1e-3, fused=engine == "fused")
    for t in range(3):
        theta, s = free_pretrain_loop(peaks[t], 1.0, x, y, 60, 1e-3)
        assert (fit.params[0][t] - theta).abs().max() < 1e-10
        assert (fit.params[2][t] - s).abs().max() < 1e-12
    assert torch.equal(fit.params[1], Reparam().start(peaks)[1])  # s_1 is unused when every scale is free
    off_law = (fit.params[2] - law_scales(fit.params[0].clamp(*PEAK_CLAMP))).abs().max()
    assert off_law > 1e-6


def test_peak_clamp_binds():
    """Peaks pushed past the clamp stop at its edge: θ leaves [0.01, 0.99], the peak it encodes does not,
    the gradient through it is zero, and the result still equals the reference with the same clamp."""
    x = train_grid(64, f64)
    y = get_target("x11")(x)
    peaks = torch.tensor([[0.02, 0.5, 0.5, 0.5], [0.98, 0.5, 0.5, 0.5]], dtype=f64)
    sign, free = torch.full((2,), -1.0, dtype=f64), torch.zeros(2, dtype=torch.bool)
    reparam = Reparam()
    fit = pretrain(reparam, peaks, free, sign, x, y.expand(2, -1), 200, 5e-2)
    theta = fit.params[0]
    outside = (theta < PEAK_CLAMP[0]) | (theta > PEAK_CLAMP[1])
    assert outside.any(), theta
    a = reparam.peak_values(theta)
    edge = torch.tensor(PEAK_CLAMP, dtype=f64)[(theta[outside] > 0.5).long()]
    assert torch.equal(a[outside], edge)
    for t in range(2):
        ref, _ = pretrain_loop(peaks[t], -1.0, x, y, 200, 5e-2)
        assert (theta[t] - ref).abs().max() < 1e-9
    flat = Shapes.join(reparam.layers(fit.params, free, sign))
    assert trial_pieces(Shapes(3), flat)[0] == [8, 8]  # a peak at the clamp still gives 2^d pieces


def test_sigmoid_peaks_equal_reference_and_learn_slower():
    """a = sigmoid(θ): the same trajectory as Adam on θ through sigmoid and the closed form; sigmoid' <= 1/4,
    so the same Adam steps in θ move the peaks less than the clamp's identity does."""
    x = train_grid(100, f64)
    y = get_target("x11")(x)
    peaks = torch.tensor([[0.5] * 6, [0.4] * 6], dtype=f64)
    sign, free = torch.full((2,), -1.0, dtype=f64), torch.zeros(2, dtype=torch.bool)
    clamp = pretrain(Reparam(peaks="clamp"), peaks, free, sign, x, y.expand(2, -1), 100, 1e-2)
    sig = Reparam(peaks="sigmoid")
    sfit = pretrain(sig, peaks, free, sign, x, y.expand(2, -1), 100, 1e-2)
    for t in range(2):
        theta = torch.logit(peaks[t]).requires_grad_(True)
        s1 = law_scales(peaks[t])[0].clone().requires_grad_(True)
        opt = torch.optim.Adam([theta, s1], lr=1e-2)
        for _ in range(100):
            opt.zero_grad()
            a = torch.sigmoid(theta)
            ((closed_form(x, a, law_scales(a, s1), -1.0) - y) ** 2).mean().backward()
            opt.step()
        assert (sfit.params[0][t] - theta.detach()).abs().max() < 1e-10
    a = sig.peak_values(sfit.params[0])
    assert (a - peaks).abs().sum() < (clamp.params[0] - peaks).abs().sum()


def test_diverged_trial_is_frozen_and_others_unaffected(engine):
    shapes, x = Shapes(3), train_grid(50)
    y = get_target("x3")(x).expand(3, -1)
    start = random_weights("kaiming", shapes, generators(0, 3))
    bad = start.clone()
    bad[1] *= 1e30  # overflows float32: an infinite loss from the first step
    fit_ok = train_raw(shapes, start[[0, 2]], x, y[[0, 2]], 40, 1e-2, fused=engine == "fused")
    fit = train_raw(shapes, bad, x, y, 40, 1e-2, fused=engine == "fused")
    assert fit.diverged.tolist() == [False, True, False]
    assert torch.equal(fit.params[0][1], bad[1])  # frozen where it stood
    assert torch.equal(fit.params[0][[0, 2]], fit_ok.params[0])  # the others bit for bit as without it
    assert torch.equal(fit.history[:, [0, 2]], fit_ok.history)
    assert not math.isfinite(fit.history[-1, 1].item())


def test_nan_mid_training_is_caught(engine):
    """A loss that turns NaN half way (weights blown up after some steps) is marked and frozen; the other
    trial is bit for bit what it is when trained alone."""
    shapes, x = Shapes(2), train_grid(20)
    y = get_target("x3")(x).expand(2, -1)
    start = random_weights("kaiming", shapes, generators(3, 2))
    start[0] *= 1e4  # a finite loss at first; Adam's steps of size ~lr then overflow float32
    fit = train_raw(shapes, start, x, y, 30, 1e12, fused=engine == "fused")
    alone = train_raw(shapes, start[1:], x, y[1:], 30, 1e12, fused=engine == "fused")
    assert fit.diverged.tolist() == [True, False]
    assert math.isfinite(fit.history[0, 0].item()) and not math.isfinite(fit.history[-1, 0].item())
    first_bad = int((~torch.isfinite(fit.history[:, 0])).nonzero()[0])
    assert (fit.history[first_bad:, 0].isnan() | fit.history[first_bad:, 0].isinf()).all()
    assert torch.equal(fit.params[0][1], alone.params[0][0])


def test_pretraining_keeps_exactly_2_to_the_d_pieces():
    """The parameterisation cannot lose pieces: counted at checkpoints along pretraining trajectories,
    law-tied and free scales."""
    d, T = 5, 4
    x = train_grid(100, f64)
    y = get_target("x11")(x).expand(T, -1)
    peaks = _peaks(T, d + 1, 5)
    sign = torch.full((T,), -1.0, dtype=f64)
    for free in (False, True):
        free_mask = torch.full((T,), free)
        reparam = Reparam()
        for epochs in (0, 50, 200, 600):
            fit = pretrain(reparam, peaks, free_mask, sign, x, y, epochs, 1e-2)
            flat = Shapes.join(reparam.layers(fit.params, free_mask, sign))
            assert trial_pieces(Shapes(d), flat)[0] == [2**d] * T, f"free={free}, after {epochs} epochs"


def test_snapshots_are_stitched_across_worker_slices(engine):
    """Snapshots of 130 trials on two worker threads equal those of one thread, and a lone trial's (trained
    beside a copy of itself) equal its row of the batch; both stages keep them at epochs 0, 3, 6, 7."""
    shapes, x = Shapes(3), train_grid(20)
    y = get_target("x3")(x).expand(130, -1)
    start = random_weights("kaiming", shapes, generators(0, 130))
    fused = engine == "fused"
    one, two = (train_raw(shapes, start, x, y, 7, 1e-2, w, fused, keep_every=3) for w in (1, 2))
    alone = train_raw(shapes, start[:1], x, y[:1], 7, 1e-2, 1, fused, keep_every=3)
    assert [s.epoch for s in two.snapshots] == [0, 3, 6, 7]
    for a, b, c in zip(one.snapshots, two.snapshots, alone.snapshots):
        assert a.epoch == b.epoch == c.epoch
        assert torch.equal(a.params[0], b.params[0]) and torch.equal(a.params[0][:1], c.params[0])
    assert torch.equal(two.snapshots[0].params[0], start) and torch.equal(two.snapshots[-1].params[0], two.params[0])
    peaks = _peaks(130, 4, 3).float()
    sign, free = torch.full((130,), -1.0), torch.zeros(130, dtype=torch.bool)
    pre = pretrain(Reparam(), peaks, free, sign, x, y, 7, 1e-2, workers=2, fused=fused, keep_every=3)
    assert [s.epoch for s in pre.snapshots] == [0, 3, 6, 7]
    assert all(torch.equal(a, b) for a, b in zip(pre.snapshots[-1].params, pre.params))


@pytest.mark.parametrize("peaks_by", ["clamp", "sigmoid"])
@pytest.mark.parametrize("s1", ["trainable", "tied"])
@pytest.mark.parametrize("offset", [True, False])
@pytest.mark.parametrize("d", [1, 2, 5])
def test_reparam_vjp_equals_autograd(peaks_by, s1, offset, d):
    """The fused pretraining's gradients: Reparam.vjp maps the layers' gradients to [θ, s_1, s] as autograd
    through Reparam.layers does (float64), for every setting, with law and free trials side by side, clamped
    peaks on and past the clamp's edges, and scales that changed sign."""
    T, g = 8, torch.Generator().manual_seed(d)
    reparam = Reparam(peaks=peaks_by, s1=s1, offset=offset)
    params = reparam.start(_peaks(T, d + 1, d, 0.1, 0.9))
    params[1] = params[1] * (0.5 + torch.rand(T, generator=g, dtype=f64))
    params[2] = params[2] * torch.where(torch.rand(T, d, generator=g) < 0.3, -1.0, 1.0).to(f64)
    if peaks_by == "clamp":  # θ past both edges and exactly on them (the gradient passes on the edges)
        params[0][0, 0], params[0][1, 0], params[0][2, -1], params[0][3, 0] = 0.005, 0.995, PEAK_CLAMP[1], 0.01
    free = torch.arange(T) % 2 == 1
    sign = torch.where(torch.arange(T) % 3 == 0, 1.0, -1.0).to(f64)
    leaves = [p.clone().requires_grad_() for p in params]
    layers = reparam.layers(leaves, free, sign)
    cot = [torch.randn(t.shape, generator=g, dtype=f64) for t in layer_tensors(layers)]
    total = sum((t * c).sum() for t, c in zip(layer_tensors(layers), cot))
    expect = torch.autograd.grad(total, leaves, allow_unused=True)
    got = reparam.vjp(params, free, sign, list(zip(cot[::2], cot[1::2])))
    for e, h, name in zip(expect, got, ["theta", "s1", "s"]):
        e = torch.zeros_like(h) if e is None else e
        assert (h - e).abs().max() <= 1e-13 * max(e.abs().max(), 1.0), name
    if s1 == "tied":
        assert torch.equal(got[1], torch.zeros(T, dtype=f64))
    assert torch.equal(got[1][free], torch.zeros(int(free.sum()), dtype=f64))  # a free trial's s_1 is unused
    assert torch.equal(got[2][~free], torch.zeros(int((~free).sum()), d, dtype=f64))


@pytest.mark.parametrize(
    "reparam", [Reparam(), Reparam("sigmoid", "tied", False)], ids=["default", "sigmoid-tied-plain"]
)
def test_fused_pretraining_equals_autograd_pretraining(reparam):
    """Fused pretraining (kernel gradients through Reparam.vjp, no autograd) follows the torch engine's
    trajectory (autograd through the encoding) to rounding, law and free trials together, in float64."""
    T, d = 6, 5
    x = train_grid(64, f64)
    y = get_target("x11")(x).expand(T, -1)
    peaks = _peaks(T, d + 1, 9)
    sign, free = torch.full((T,), -1.0, dtype=f64), torch.arange(T) % 2 == 0
    runs = [pretrain(reparam, peaks, free, sign, x, y, 100, 1e-3, fused=f) for f in (False, True)]
    for a, b in zip(runs[0].params, runs[1].params):
        assert (a - b).abs().max() < 1e-10
    assert (runs[0].history - runs[1].history).abs().max() < 1e-12


@pytest.mark.parametrize("peaks_by", ["clamp", "sigmoid"])
@pytest.mark.parametrize("s1", ["trainable", "tied"])
@pytest.mark.parametrize("offset", [True, False])
@pytest.mark.parametrize("d", [1, 2, 5])
def test_encoder_equals_reparam(peaks_by, s1, offset, d):
    """encoder.Encoder, the fused pretraining step's encoding and backward in C (encode.c), against Reparam.layers
    and Reparam.vjp (torch): the same layers (bit for bit with clamped peaks, in float32 too, but the offset m,
    summed in another order) and gradients."""
    from compnet.encoder import Encoder

    T, g = 8, torch.Generator().manual_seed(d)
    reparam = Reparam(peaks=peaks_by, s1=s1, offset=offset)
    free = torch.arange(T) % 2 == 1
    sign = torch.where(torch.arange(T) % 3 == 0, 1.0, -1.0).to(f64)
    for dtype in (f64, torch.float32):
        params = reparam.start(_peaks(T, d + 1, d, 0.1, 0.9).to(dtype))
        params[1] = params[1] * (0.5 + torch.rand(T, generator=g, dtype=f64)).to(dtype)
        params[2] = params[2] * torch.where(torch.rand(T, d, generator=g) < 0.3, -1.0, 1.0).to(dtype)
        if peaks_by == "clamp":
            params[0][0, 0], params[0][1, 0], params[0][3, 0] = 0.005, 0.995, 0.01
        for p in params:
            p.grad = torch.empty_like(p)
        enc = Encoder(reparam, free, sign.to(dtype), d, dtype)
        layers, expect = enc.encode(params), reparam.layers(params, free, sign.to(dtype))
        for got, want in zip(layer_tensors(layers), layer_tensors(expect)):
            if peaks_by == "clamp":  # bit for bit but the offset m = Σ|s_k| (summed in index order here)
                if got.dim() == 2:  # biases: column 0 holds the offset (layer 1: m, output: −m, hidden: 0)
                    err = (got[:, 0] - want[:, 0]).abs().max()
                    assert err <= 4 * torch.finfo(dtype).eps * max(want[:, 0].abs().max(), 1.0)
                    assert torch.equal(got[:, 1:], want[:, 1:])
                else:
                    assert torch.equal(got, want)
            else:
                assert (got - want).abs().max() <= 1e-6 * want.abs().max()
        for buf in enc.grads:
            buf.copy_(torch.randn(buf.shape, generator=g, dtype=f64))
        want = reparam.vjp(params, free, sign.to(dtype), list(zip(enc.grads[::2], enc.grads[1::2])))
        enc.vjp(params)
        tol = 1e-13 if dtype == f64 else 1e-5
        for p, w in zip(params, want):
            assert (p.grad - w).abs().max() <= tol * max(w.abs().max(), 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, f64])
@pytest.mark.parametrize("keep_every", [0, 7])
def test_native_adam_loop_is_the_python_loop_bit_for_bit(dtype, keep_every):
    """The fused raw stage's loop in C (kernel.bind_adam: pass and update, no Python per step) gives the very
    bits of optim.adam's torch update on the same kernel: history, final weights, snapshots, and a trial whose
    loss overflows frozen where it stands (tests/test_stages.py's NaN tests cover a blow-up mid-training)."""
    from compnet import kernel
    from compnet.model import layer_pairs
    from compnet.optim import adam

    if kernel.unavailable():
        pytest.skip(kernel.unavailable())
    shapes, x = Shapes(4), train_grid(50, dtype)
    start = random_weights("kaiming", shapes, generators(0, 5), dtype)
    y = get_target("sin")(x).repeat(5, 1)
    y[3] = 1e20 if dtype == torch.float32 else 1e160  # its squared error overflows: it never moves
    fits = []
    for native in (False, True):

        def loss(p, bound=[]):  # noqa: B006 (the kernel bound once per loop, on the first call)
            if not bound:
                bound.append(kernel.bind(layer_pairs(p), x, y, [t.grad for t in p]))
            return bound[0]()

        def run(leaves, state):
            return kernel.bind_adam(layer_pairs(leaves), x, y, state)

        params = layer_tensors(shapes.split(start.clone()))
        fits.append(adam(params, loss, 60, 0.05, keep_every=keep_every, native=run if native else None))
    py, c = fits
    assert torch.equal(py.history, c.history) and torch.equal(py.diverged, c.diverged)
    assert all(torch.equal(a, b) for a, b in zip(py.params, c.params))
    assert [s.epoch for s in py.snapshots] == [s.epoch for s in c.snapshots]
    assert all(torch.equal(a, b) for s, t in zip(py.snapshots, c.snapshots) for a, b in zip(s.params, t.params))
    assert c.diverged.tolist() == [False, False, False, True, False]  # the test's premise
    moved = [(p - q).abs().amax(tuple(range(1, p.dim()))) for p, q in zip(c.params, layer_tensors(shapes.split(start)))]
    assert [bool(torch.stack(moved).amax(0)[t] > 1e-3) for t in range(5)] == [True, True, True, False, True]


def test_native_adam_loop_refuses_layers_it_would_not_move():
    """bind_adam's C loop updates Adam's flat buffer and reads the layers through their pointers: layers that are
    not that buffer's slices, in order, would train nothing (copies) or the wrong parameter (a swap), silently."""
    from compnet import kernel
    from compnet.model import layer_pairs
    from compnet.optim import Buffers

    if kernel.unavailable():
        pytest.skip(kernel.unavailable())
    shapes, x, T = Shapes(3), train_grid(20), 4
    flat = random_weights("kaiming", shapes, generators(0, T)).flatten()
    params = layer_tensors(shapes.split(flat.view(T, -1)))
    sizes = [p.numel() for p in params]
    views = [v.view(p.shape) for v, p in zip(flat.split(sizes), params)]
    y = get_target("x3")(x).expand(T, -1)
    state = Buffers(flat, torch.zeros_like(flat), torch.zeros_like(flat), torch.zeros_like(flat), sizes,
                    torch.ones(T, dtype=torch.bool), torch.empty(3, T), 0.01, (0.9, 0.999), 1e-8)  # fmt: skip
    start = [v.clone() for v in views]
    kernel.bind_adam(layer_pairs(views), x, y, state)(1, 2)  # the buffer's own slices: accepted, and they move
    assert all(not torch.equal(v, s) for v, s in zip(views, start))
    swapped = list(views)
    swapped[2], swapped[4] = views[4], views[2]  # two hidden layers' 4×4 weights trade places: they still chain
    for layers in ([v.clone() for v in views], swapped):
        with pytest.raises(ValueError, match="slices"):
            kernel.bind_adam(layer_pairs(layers), x, y, state)


@pytest.mark.parametrize("dtype", [torch.float32, f64])
@pytest.mark.parametrize("reparam", [Reparam(), Reparam(peaks="sigmoid", s1="tied", offset=False)])
def test_native_pretraining_loop_is_the_python_loop_bit_for_bit(dtype, reparam):
    """The fused pretraining's loop in C (encoding, pass, its backward and Adam's update in one call per 25
    steps) gives the very bits of optim.adam stepping through encoder.Encoder and the kernel from Python, for
    law and free trials side by side, snapshots included."""
    from compnet import kernel
    from compnet.encoder import Encoder
    from compnet.optim import adam

    if kernel.unavailable():
        pytest.skip(kernel.unavailable())
    T, d, x = 6, 5, train_grid(40, dtype)
    y = get_target("x11")(x).expand(T, -1)
    free, sign = torch.arange(T) % 2 == 0, torch.full((T,), -1.0, dtype=dtype)
    fits = []
    for native in (False, True):
        enc = Encoder(reparam, free, sign, d, dtype)
        step = kernel.bind(enc.layers, x, y, enc.grads)

        def loss(p, enc=enc, step=step):
            enc.encode(p)
            out = step()
            enc.vjp(p)
            return out

        def run(leaves, state, enc=enc):
            return kernel.bind_adam(enc.layers, x, y, state, encoder=enc)

        start = reparam.start(_peaks(T, d + 1, 3).to(dtype))
        fits.append(adam(start, loss, 60, 1e-2, keep_every=20, native=run if native else None))
    py, c = fits
    assert torch.equal(py.history, c.history)
    assert all(torch.equal(a, b) for a, b in zip(py.params, c.params))
    assert all(torch.equal(a, b) for s, t in zip(py.snapshots, c.snapshots) for a, b in zip(s.params, t.params))
    assert (c.history[-1] < 0.9 * c.history[0]).all()  # it did train
