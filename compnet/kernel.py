"""The fused engine: per-trial MSE of a batch of ReLU MLPs and its gradient in one C pass (kernel.c).

For every trial t, loss_t = mean_n (f_t(x_n) − y_tn)² with f_t the plain MLP of `model.forward`, and, in the
backward pass, dloss_t/dW_l and dloss_t/db_l: the same numbers as `mse(forward(layers, x), y)` and its
autograd backward up to rounding (float64: ≤ 1e-15 apart; the sums run in another order). torch needs a
few dozen memory-bound passes over [T, 4, N] activations per step; the kernel walks the points in blocks
of one SIMD vector and keeps a block's activations in registers (make bench: ≈4× faster per step).

kernel.c is compiled at first use by the machine's C compiler (`$CC`, else `cc`) with -O3 -march=native
and cached in `$XDG_CACHE_HOME/compnet` (~/.cache/compnet), under a name that hashes the source, the
compiler and the CPU, so a cache shared between machines never runs code built for another CPU.
`engine=auto` (the default) uses it where it builds and torch's ops elsewhere; `engine=fused` insists.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from compnet.model import Layer

SOURCE = Path(__file__).with_name("kernel.c")
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=gnu11"]
_FN = {torch.float32: "mlp_mse_f32", torch.float64: "mlp_mse_f64"}


class KernelUnavailable(RuntimeError):
    """kernel.c could not be compiled or loaded on this machine (the message says why)."""


def _cpu() -> str:
    """What -march=native depends on: the CPU's model and feature flags where Linux tells them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() + platform.processor()
    return "".join(sorted({ln for ln in info.splitlines() if ln.startswith(("model name", "flags", "Features"))}))


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "compnet"


@functools.cache  # once per process: the answer cannot change while it runs
def library() -> ctypes.CDLL:
    """The compiled kernel, built on first use; raises KernelUnavailable with the compiler's complaint."""
    cc = os.environ.get("CC", "cc")
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise KernelUnavailable(f"no working C compiler ({cc!r}: {e})") from None
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), version.encode(), _cpu().encode()]))
    path = _cache_dir() / f"kernel-{key.hexdigest()[:16]}.so"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # build beside the target and rename: a second process building at the same time never sees half a file
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
        os.close(fd)
        p = subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCE)], capture_output=True, text=True)
        if p.returncode:
            os.unlink(tmp)
            raise KernelUnavailable(f"{cc} could not compile {SOURCE.name}:\n{p.stderr.strip()}")
        os.replace(tmp, path)
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise KernelUnavailable(f"could not load {path}: {e}") from None
    i64, ptr, ptrs = ctypes.c_int64, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
    for name in _FN.values():
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        fn.argtypes = [i64, i64, i64, ctypes.POINTER(i64), ptrs, ctypes.POINTER(i64), ptrs, ctypes.POINTER(i64), ptr, ptr, i64, ptr, ptrs, ptrs]
    return lib


def unavailable() -> str | None:
    """Why the fused engine cannot run here, or None when it can."""
    try:
        library()
    except KernelUnavailable as e:
        return str(e)
    return None


def resolve(engine: str) -> str:
    """The engine a run uses: `auto` → fused where the kernel builds, else torch."""
    return "fused" if engine == "fused" or (engine == "auto" and unavailable() is None) else "torch"


def _rows(t: torch.Tensor) -> torch.Tensor:
    """t itself if each trial's block is contiguous (any stride between trials, 0 included), else a copy."""
    inner = t[0] if t.shape[0] else t
    return t if inner.is_contiguous() else t.contiguous()


def _call(layers: list[Layer], x: torch.Tensor, y: torch.Tensor, grads: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    w, b = [_rows(w) for w, _ in layers], [_rows(b) for _, b in layers]
    x, y = x.contiguous(), y if y.stride(-1) == 1 else y.contiguous()
    if x.dtype not in _FN or any(t.dtype != x.dtype for t in (y, *w, *b)):
        raise TypeError(f"the fused engine takes float32 or float64 throughout, got x {x.dtype}")
    T, L = w[0].shape[0], len(layers)
    loss = torch.empty(T, dtype=x.dtype)
    gw, gb = ([torch.empty_like(t, memory_format=torch.contiguous_format) for t in ts] for ts in (w, b)) if grads else ([], [])
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    rc = getattr(library(), _FN[x.dtype])(
        T, x.shape[0], L, _array(i64, [w[0].shape[2]] + [t.shape[1] for t in w]),
        _array(ptr, [t.data_ptr() for t in w]), _array(i64, [t.stride(0) for t in w]),
        _array(ptr, [t.data_ptr() for t in b]), _array(i64, [t.stride(0) for t in b]),
        x.data_ptr(), y.data_ptr(), y.stride(0), loss.data_ptr(),
        _array(ptr, [t.data_ptr() for t in gw]) if grads else None,
        _array(ptr, [t.data_ptr() for t in gb]) if grads else None,
    )  # fmt: skip
    if rc:
        raise MemoryError("the fused kernel could not allocate its scratch memory")
    return loss, [g for pair in zip(gw, gb) for g in pair]


def _array(ctype, values: list):
    return (ctype * len(values))(*values)


class _MlpMse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        loss, grads = _call(list(zip(tensors[::2], tensors[1::2])), x, y, True)
        ctx.save_for_backward(*grads)
        return loss

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return (None, None, *(g.view(-1, *[1] * (d.dim() - 1)) * d for d in ctx.saved_tensors))


def mlp_mse(layers: list[Layer], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-trial MSE [T] of the batched MLP `layers` on x [N] against y [T, N], differentiable in the layers.

    The C call releases the GIL, so `train.chunked`'s worker threads run their slices side by side."""
    if torch.is_grad_enabled() and any(t.requires_grad for layer in layers for t in layer):
        return _MlpMse.apply(x, y, *(t for layer in layers for t in layer))
    return _call(layers, x, y, False)[0]
