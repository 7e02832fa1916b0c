"""The fused engine: per-trial MSE of a batch of ReLU MLPs and its gradient in one C pass (kernel.c).

For every trial t, loss_t = mean_n (f_t(x_n) − y_tn)² with f_t the plain MLP of `model.forward`, and, in the
backward pass, dloss_t/dW_l and dloss_t/db_l: the same numbers as `mse(forward(layers, x), y)` and its
autograd backward up to rounding (float64: a few 1e-16 apart; the sums run in another order), except where
a pre-activation is 0 up to rounding: there the two may choose different ReLU masks, since torch leaves the
matrix product to BLAS (MKL fuses multiply and add on an FMA machine, in most columns). torch needs a few
dozen memory-bound passes over [T, 4, N] activations per step; the kernel walks the points in blocks of a
SIMD register's worth and keeps a block's activations in registers (forward and backward ≈4× faster).

`bind_adam` runs a training loop in C: each step the pass into Adam's gradient buffer and Adam's update, as
`optim.adam` computes it (the same bits); with an `encoder.Encoder`, pretraining's step, the encoding of
[θ, s_1, s] into the layers before the pass (kernel.c includes encode.c) and its backward after it.

The kernel's numbers are the same on every x86-64 machine, bit for bit: a block is always 32 bytes (8
floats, 4 doubles; `describe()` reads the lane counts from the build), not the machine's vector width, so
every sum runs in the same order; and it is compiled with -ffp-contract=off, so that no product is fused
into an FMA (one rounding instead of two) where the machine has one. A trial trained on an AVX-512 machine
therefore gets the float32 table an AVX2 or SSE2 machine gets (chaotic training amplifies any difference in
the last bit). -march=native only chooses the instructions: the tests check that its build and a generic
x86-64 (SSE2) build give identical bits.

kernel.c is compiled at first use by the machine's C compiler (`$CC`, else `cc`) with FLAGS and cached in
`$XDG_CACHE_HOME/compnet` (~/.cache/compnet), under a name that hashes the sources, the whole compiler
command (all of `$CC`'s words, the compiler's version), the flags and the CPU, so a cache shared between
machines never runs code built for another CPU or by another command. `engine=auto` (the default) uses it
where it builds and torch's ops elsewhere; `engine=fused` insists.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.autograd.function import once_differentiable

from compnet.model import Layer, layer_pairs, layer_tensors
from compnet.optim import Buffers

SOURCE = Path(__file__).with_name("kernel.c")
SOURCES = [SOURCE, SOURCE.with_name("encode.c")]  # kernel.c includes encode.c
# -ffp-contract=off: whether the compiler fuses w*h + z into an FMA (one rounding instead of two) depends on the
# target and the compiler, so the same source would round differently on different machines; where a
# pre-activation is 0 up to rounding that even decides the ReLU's mask
# -fno-math-errno: sqrt sets no errno, so Adam's update loop vectorises (the same correctly rounded roots)
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC", "-std=gnu11"]
_FN = {torch.float32: "mlp_mse_f32", torch.float64: "mlp_mse_f64"}


class KernelUnavailable(RuntimeError):
    """kernel.c could not be compiled or loaded on this machine (the message says why)."""


@functools.cache
def _cpuinfo() -> list[str] | None:
    """/proc/cpuinfo's lines, or None where Linux does not tell."""
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo's, else platform.processor()'s), None where neither tells."""
    info = _cpuinfo()
    if info is None:
        return platform.processor() or None
    return next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), None)


def _cpu() -> str:
    """What -march=native depends on: the CPU's model and feature flags where Linux tells them (elsewhere
    the host's name too, so that a cache shared between machines never mixes their builds)."""
    info = _cpuinfo()
    if info is None:
        return platform.machine() + platform.processor() + platform.node()
    return "".join(sorted({ln for ln in info if ln.startswith(("model name", "flags", "Features"))}))


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "compnet"


def _build(cc: list[str], tries: list[list[str]], paths: list[Path]) -> int:
    """Compile kernel.c with the first of `tries` (sets of flags) the compiler takes, to its path in `paths`;
    the index of the one that built."""
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    # build beside the target and rename: a second process building at the same time never sees half a file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=paths[0].parent)
    os.close(fd)
    try:
        errors = []
        for i, flags in enumerate(tries):
            p = subprocess.run([*cc, *flags, "-o", tmp, str(SOURCE)], capture_output=True, text=True)
            if p.returncode == 0:
                os.replace(tmp, paths[i])
                return i
            errors.append(p.stderr.strip())
        raise KernelUnavailable(f"{' '.join(cc)} could not compile {SOURCE.name}:\n{errors[0]}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass(frozen=True)
class _Built:
    lib: ctypes.CDLL
    cc: list[str]
    version: str  # the compiler's `--version`
    flags: list[str]  # those it was built with
    path: Path


def _load(flags: list[str] = FLAGS, cache_dir: Path | None = None) -> _Built:
    """Build kernel.c with `flags` (without -march=native if the compiler refuses it) into `cache_dir`
    (default: the user's cache), or find it built there, and load it."""
    cc = shlex.split(os.environ.get("CC") or "cc")  # CC may carry arguments ("ccache gcc")
    try:
        version = subprocess.run([*cc, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise KernelUnavailable(f"no working C compiler ({' '.join(cc)!r}: {e})") from None
    tries = [flags] + ([[f for f in flags if f != "-march=native"]] if "-march=native" in flags else [])
    source = b"".join(p.read_bytes() for p in SOURCES)
    # all of CC's words, not only the compiler's version: "cc -ffp-contract=fast" builds other code than "cc";
    # each set of flags under its own name, so that a build found in the cache is known by its flags
    keys = [hashlib.sha256(source + json.dumps([cc, f, version, _cpu()]).encode()).hexdigest()[:16] for f in tries]
    paths = [(cache_dir or _cache_dir()) / f"kernel-{k}.so" for k in keys]
    try:
        built = next((i for i, p in enumerate(paths) if p.exists()), None)
        if built is None:
            if sys.stderr.isatty():  # a pause of a few seconds, once per machine: say what it is
                print("compnet: building the fused kernel for this machine (once, a few seconds)", file=sys.stderr)
            built = _build(cc, tries, paths)
        lib = ctypes.CDLL(str(paths[built]))
    except OSError as e:  # an unwritable or full cache, a broken file
        raise KernelUnavailable(f"could not build or load {paths[0]}: {e}") from None
    i64, ptr, ptrs = ctypes.c_int64, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
    i64s = ctypes.POINTER(i64)
    for name in _FN.values():
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        # T, N, L, dims, groups, weights, their strides, biases, their strides, x, y, y's stride, loss, dW, db
        fn.argtypes = [i64, i64, i64, i64s, i64s, ptrs, i64s, ptrs, i64s, ptr, ptr, i64, ptr, ptrs, ptrs]
        getattr(lib, f"{name}_lanes").restype = i64
        adam = getattr(lib, f"{name}_adam")
        adam.restype = ctypes.c_int
        # the pass's arguments but the loss; flat, grad, m, v, nparams, sizes, steps, scalars, b1, b2, eps,
        # history, alive
        f64 = ctypes.c_double
        adam.argtypes = fn.argtypes[:12] + fn.argtypes[13:] + [ptr] * 4 + [i64, i64s, i64, ptr, f64, f64, f64, ptr, ptr]
        adam.argtypes += [ctypes.POINTER(Encoding)]
        encode, vjp = getattr(lib, f"{name}_encode"), getattr(lib, f"{name}_encode_vjp")
        encode.restype = vjp.restype = ctypes.c_int
        encode.argtypes = [i64, ctypes.POINTER(Encoding), ptr, ptr, ptr, ptrs, i64s, ptrs, i64s]
        vjp.argtypes = [i64, ctypes.POINTER(Encoding), ptr, ptr, ptr, ptrs, ptrs, ptr, ptr, ptr]
    return _Built(lib, cc, version, tries[built], paths[built])


class Encoding(ctypes.Structure):
    """encode.c's `struct enc`: the reparameterisation's settings, and pointers to each trial's `free` (int8)
    and `sign` (the layers' dtype), which must outlive it."""

    _fields_ = [("d", ctypes.c_int64), ("sigmoid", ctypes.c_int64), ("trainable", ctypes.c_int64),
                ("offset", ctypes.c_int64), ("lo", ctypes.c_double), ("hi", ctypes.c_double),
                ("free", ctypes.c_void_p), ("sign", ctypes.c_void_p)]  # fmt: skip


def encoding_functions(dtype: torch.dtype):
    """encode.c's `encode` and `encode_vjp` for float32 or float64."""
    lib = library()
    return getattr(lib, f"{_FN[dtype]}_encode"), getattr(lib, f"{_FN[dtype]}_encode_vjp")


@functools.cache  # once per process, failure included: every caller gets the same answer
def _outcome() -> _Built | str:
    try:
        return _load()
    except KernelUnavailable as e:
        return str(e)


def library() -> ctypes.CDLL:
    """The compiled kernel, built on first use; raises KernelUnavailable with the reason it cannot be."""
    built = _outcome()
    if isinstance(built, str):
        raise KernelUnavailable(built)
    return built.lib


def unavailable() -> str | None:
    """Why the fused engine cannot run here, or None when it can."""
    built = _outcome()
    return built if isinstance(built, str) else None


def describe() -> dict:
    """What the kernel's numbers depend on, for the run's record: the lanes per block (read from the build),
    the compiler and flags it was built with, and the CPU; where it does not build, `unavailable` says why."""
    built = _outcome()
    if isinstance(built, str):
        none = dict.fromkeys(["lanes_f32", "lanes_f64", "cc", "cc_command", "flags"])
        return {**none, "cpu": cpu_model(), "unavailable": built}
    return {
        "lanes_f32": built.lib.mlp_mse_f32_lanes(),
        "lanes_f64": built.lib.mlp_mse_f64_lanes(),
        "cc": (built.version.splitlines() or [""])[0],
        "cc_command": " ".join(built.cc),
        "flags": " ".join(built.flags),
        "cpu": cpu_model(),
        "unavailable": None,
    }


def resolve(engine: str, device: str = "cpu") -> str:
    """The engine a run uses: `auto` → fused where the kernel builds and training runs on the CPU (the
    kernel is CPU code), else torch."""
    auto_fused = engine == "auto" and device == "cpu" and unavailable() is None
    return "fused" if engine == "fused" or auto_fused else "torch"


def _rows(t: torch.Tensor) -> torch.Tensor:
    """t itself if each trial's block is contiguous (any stride between trials, 0 included), else a copy."""
    inner = t[0] if t.shape[0] else t
    return t if inner.is_contiguous() else t.contiguous()


def _call(
    layers: list[Layer],
    x: torch.Tensor,
    y: torch.Tensor,
    grads: list[torch.Tensor] | None,
    groups: list[int] | None = None,
) -> torch.Tensor:
    """Per-trial loss [T]; with `grads` ([w_1, b_1, w_2, …], contiguous, the layers' shapes) also
    dloss_t/dW_l and dloss_t/db_l, written into them. x is [N] or [N, n]; `groups[l]` = g reads layer l as g
    diagonal blocks (the rest of its weight is taken as 0 and gets gradient 0)."""
    fn, args, T, _, keep = _prepare(layers, x, y, grads, groups)
    loss = _run(fn, args, T, x.dtype)
    del keep
    return loss


def _run(fn, args: list, T: int, dtype: torch.dtype) -> torch.Tensor:
    loss = torch.empty(T, dtype=dtype)
    args[_LOSS] = loss.data_ptr()
    if fn(*args):
        raise MemoryError("the fused kernel could not allocate its scratch memory")
    return loss


_LOSS = 12  # the loss pointer's place among the C function's arguments


def bind(
    layers: list[Layer], x: torch.Tensor, y: torch.Tensor, grads: list[torch.Tensor], groups: list[int] | None = None
):
    """`mlp_mse_into(layers, x, y, grads)` as a function of no arguments, for tensors that stay where they are
    and change only in place (a training loop's parameters and gradient buffers): the checks and the C call's
    arguments are prepared once, so that a step costs the kernel and little else (at 30 trials, the per-call
    preparation was a tenth of a raw step). Refuses layers that the kernel could only read through a copy."""
    fn, args, T, copied, keep = _prepare(layers, x, y, grads, groups)
    if copied:
        raise ValueError("bind takes layers whose every trial's block is contiguous (a copy would go stale)")

    def step() -> torch.Tensor:
        assert keep  # the tensors behind the pointers live as long as this function
        return _run(fn, args, T, x.dtype)

    return step


def bind_adam(
    layers: list[Layer],
    x: torch.Tensor,
    y: torch.Tensor,
    state: Buffers,
    groups: list[int] | None = None,
    encoder=None,
) -> Callable[[int, int], None]:
    """optim.adam's steps first … last on `state`'s buffers in one C call (`optim.Native`): each step the kernel's
    pass into state.grad, whose slices the layers' gradients must be, then Adam's update of every live trial.
    With an `encoder.Encoder`, state holds [θ, s_1, s]: its layers are written from them before each pass and
    the pass's gradients (into the encoder's buffers) taken back to them after."""
    T = state.alive.shape[0]
    grads = _grad_views(layers, state) if encoder is None else encoder.grads
    fn, args, _, copied, keep = _prepare(layers, x, y, grads, groups)
    if encoder is None and not _slices_of(state.flat, layer_tensors(layers), state.sizes):
        # the C loop updates state.flat and reads the layers: a layer elsewhere would never move
        raise ValueError("bind_adam takes layers that are state.flat's slices, parameter after parameter")
    if copied or not all(t.is_contiguous() for t in (state.flat, state.grad, state.m, state.v, state.history)):
        raise ValueError("bind_adam takes contiguous buffers and layers that are views of them")
    adam = getattr(library(), f"{_FN[x.dtype]}_adam")
    i64 = ctypes.c_int64
    sizes = _array(i64, [n // T for n in state.sizes])
    b1, b2 = state.betas
    row = state.history.stride(0) * state.history.element_size()

    def run(first: int, last: int) -> None:
        assert keep
        scalars = []  # as optim.adam computes them, in Python floats
        for step in range(first, last + 1):
            scalars += [(1 - b2**step) ** 0.5, state.lr / (1 - b1**step)]
        buffers = [t.data_ptr() for t in (state.flat, state.grad, state.m, state.v)]
        history = state.history.data_ptr() + (first - 1) * row
        steps = last - first + 1
        rc = adam(*args[:_LOSS], *args[_LOSS + 1 :], *buffers, len(sizes), sizes, steps,
                  _array(ctypes.c_double, scalars), b1, b2, state.eps, history, state.alive.data_ptr(),
                  None if encoder is None else ctypes.byref(encoder.spec))  # fmt: skip
        if rc:
            raise MemoryError("the fused kernel could not allocate its scratch memory")

    return run


def _slices_of(flat: torch.Tensor, tensors: list[torch.Tensor], sizes: list[int]) -> bool:
    """Whether `tensors` are the whole of `flat`, in consecutive contiguous slices of `sizes` entries."""
    at, step = flat.data_ptr(), flat.element_size()
    for t, n in zip(tensors, sizes):
        if t.numel() != n or not t.is_contiguous() or t.dtype != flat.dtype or (n and t.data_ptr() != at):
            return False  # (an empty tensor's pointer is null)
        at += n * step
    return len(tensors) == len(sizes) and at == flat.data_ptr() + flat.numel() * step


def _grad_views(layers: list[Layer], state: Buffers) -> list[torch.Tensor]:
    """The layers' gradients as views of state.grad (parameter after parameter, as optim.adam lays it out)."""
    shapes = [t.shape for t in layer_tensors(layers)]
    return [g.view(s) for g, s in zip(state.grad.split(state.sizes), shapes)]


def _prepare(
    layers: list[Layer],
    x: torch.Tensor,
    y: torch.Tensor,
    grads: list[torch.Tensor] | None,
    groups: list[int] | None = None,
):
    """The checks, and the C function with its arguments (the loss pointer left to fill), T, and whether a
    layer is read through a copy."""
    if any(w.dim() != 3 or b.dim() != 2 for w, b in layers):
        raise ValueError("the fused engine takes layers of weights [T, out, in] and biases [T, out]")
    w, b = [_rows(w) for w, _ in layers], [_rows(b) for _, b in layers]
    T, N, L = w[0].shape[0], x.shape[0], len(layers)
    dims = [w[0].shape[2]] + [t.shape[1] for t in w]
    n = 1 if x.dim() == 1 else x.shape[1]
    # the C code trusts every shape and pointer: check here what torch's ops would have refused or broadcast
    if x.dim() not in (1, 2) or dims[0] != n or dims[-1] != 1:
        raise ValueError(
            f"the fused engine takes x [N] or [N, n] and a network from n inputs to 1 output, got x "
            f"{tuple(x.shape)}, widths {dims}"
        )
    for i, (wl, bl) in enumerate(zip(w, b)):
        if wl.shape != (T, dims[i + 1], dims[i]) or bl.shape != (T, dims[i + 1]):
            raise ValueError(
                f"layer {i}: weight {tuple(wl.shape)} and bias {tuple(bl.shape)} do not chain for {T} trials"
            )
    groups = groups or [1] * L
    if len(groups) != L or any(g < 1 or dims[i] % g or dims[i + 1] % g for i, g in enumerate(groups)):
        raise ValueError(f"groups {groups} must divide each layer's widths {dims}")
    y = y.expand(T, N)  # broadcasts as `mse` would (a shared row costs nothing: stride 0)
    x, y = x.T.contiguous() if n > 1 else x.contiguous(), y if y.stride(-1) == 1 else y.contiguous()
    if x.dtype not in _FN or any(t.dtype != x.dtype or t.device.type != "cpu" for t in (x, y, *w, *b)):
        raise TypeError(
            f"the fused engine takes CPU tensors, float32 or float64 throughout; got x {x.dtype} on {x.device}"
        )
    if grads is not None and any(
        g.shape != t.shape or g.dtype != t.dtype or not g.is_contiguous() for g, t in zip(grads, layer_tensors(layers))
    ):
        raise ValueError("gradients go into contiguous tensors of the weights' shapes and dtype")
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    args = [
        T, N, L, _array(i64, dims), _array(i64, groups),
        _array(ptr, [t.data_ptr() for t in w]), _array(i64, [t.stride(0) for t in w]),
        _array(ptr, [t.data_ptr() for t in b]), _array(i64, [t.stride(0) for t in b]),
        x.data_ptr(), y.data_ptr(), y.stride(0), None,
        None if grads is None else _array(ptr, [g.data_ptr() for g in grads[::2]]),
        None if grads is None else _array(ptr, [g.data_ptr() for g in grads[1::2]]),
    ]  # fmt: skip
    copied = any(a is not t for a, t in zip(w + b, [w for w, _ in layers] + [b for _, b in layers]))
    # the tensors the pointers point into (copies included): alive as long as the arguments are used
    return getattr(library(), _FN[x.dtype]), args, T, copied, (w, b, x, y, grads)


def _array(ctype, values: list):
    return (ctype * len(values))(*values)


class _MlpMse(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, x: torch.Tensor, y: torch.Tensor, groups: list[int] | None, *tensors: torch.Tensor
    ) -> torch.Tensor:
        grads = [torch.empty_like(t, memory_format=torch.contiguous_format) for t in tensors]
        loss = _call(layer_pairs(list(tensors)), x, y, grads, groups)
        ctx.save_for_backward(*grads)
        return loss

    @staticmethod
    @once_differentiable  # the kernel's gradient is not itself differentiable
    def backward(ctx, g: torch.Tensor):
        return (None, None, None, *(g.view(-1, *[1] * (d.dim() - 1)) * d for d in ctx.saved_tensors))


def mlp_mse(layers: list[Layer], x: torch.Tensor, y: torch.Tensor, groups: list[int] | None = None) -> torch.Tensor:
    """Per-trial MSE [T] of the batched MLP `layers` on x [N] (or [N, n]) against y [T, N], differentiable in
    the layers (block-diagonal layers by `groups`: their off-block entries get gradient 0).

    The C call releases the GIL, so `batching.chunked`'s worker threads run their slices side by side."""
    if y.requires_grad:
        raise ValueError("the fused engine differentiates in the weights only; y must not require grad")
    tensors = layer_tensors(layers)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _MlpMse.apply(x, y, groups, *tensors)
    return _call(layers, x, y, None, groups)


def mlp_mse_into(
    layers: list[Layer],
    x: torch.Tensor,
    y: torch.Tensor,
    grads: list[torch.Tensor],
    groups: list[int] | None = None,
) -> torch.Tensor:
    """Per-trial MSE [T], writing dloss_t/dW_l, dloss_t/db_l into `grads` ([w_1, b_1, w_2, …], contiguous)
    without autograd: the raw-weight stage's gradients go straight into Adam's buffer."""
    return _call(layers, x, y, grads, groups)
