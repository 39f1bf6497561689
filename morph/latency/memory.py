"""Whether a workload fits in device memory: weights plus the key/value cache.

Serving holds every weight and, for every sequence of the batch, the keys and
values of every token it has seen::

    weights  = N_total * s
    kv_cache = 2 * n_layers * d_model * (n_kv_heads / n_heads) * (input_tokens + output_tokens) * batch * s

with ``s`` the dtype's bytes per element (2 for bf16). Activations and the
framework's own workspace are left out: the check is a necessary condition,
so a shape it calls infeasible cannot run, while one it calls feasible may
still need some headroom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..shapes import VOCAB_SIZE, parameter_count
from .hardware import DTYPE_BYTES
from .workload import Workload

__all__ = ["MemoryCheck", "serving_memory"]


@dataclass(frozen=True)
class MemoryCheck:
    """Memory one workload needs per shape (arrays of the broadcast shape).

    Attributes
    ----------
    weights_gb, kv_cache_gb, memory_gb : ndarray
        Weights, key/value cache and their sum (GB, 1 GB = 1e9 bytes).
    capacity_gb : float
        The device's memory (GB).
    feasible : ndarray of bool
        ``memory_gb <= capacity_gb``.
    """

    weights_gb: NDArray[np.float64]
    kv_cache_gb: NDArray[np.float64]
    memory_gb: NDArray[np.float64]
    capacity_gb: float
    hardware: str

    @property
    def feasible(self) -> NDArray[np.bool_]:
        return self.memory_gb <= self.capacity_gb

    def reason(self, i: int) -> str:
        """The sentence for shape ``i`` (flat index): empty where it fits, else what it needs against what there is."""
        if np.ravel(self.feasible)[i]:
            return ""
        total, weights, cache = (float(np.ravel(a)[i]) for a in (self.memory_gb, self.weights_gb, self.kv_cache_gb))
        return (f"needs {total:.3g} GB (weights {weights:.3g} GB + KV cache {cache:.3g} GB) but the "
                f"{self.hardware} has {self.capacity_gb:g} GB")

    def reasons(self, index: ArrayLike | None = None) -> list[str]:
        """:meth:`reason` for every shape, or for the flat positions in ``index``."""
        positions = np.arange(np.size(self.memory_gb)) if index is None else np.ravel(np.asarray(index, dtype=np.int64))
        fits = np.ravel(self.feasible)[positions]
        total, weights, cache = (np.ravel(a)[positions].tolist() for a in (self.memory_gb, self.weights_gb, self.kv_cache_gb))
        return [
            "" if ok else (f"needs {t:.3g} GB (weights {w:.3g} GB + KV cache {c:.3g} GB) but the "
                           f"{self.hardware} has {self.capacity_gb:g} GB")
            for ok, t, w, c in zip(fits.tolist(), total, weights, cache)
        ]


def serving_memory(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    n_heads: ArrayLike | None = None,
    n_kv_heads: ArrayLike | None = None,
    *,
    workload: Workload | None = None,
    vocab: int = VOCAB_SIZE,
) -> MemoryCheck:
    """Weights plus key/value cache of ``workload`` per shape, against the device's memory.

    Parameters
    ----------
    n_layers, d_model : int or array of int
        Depth (blocks) and width (features).
    n_heads, n_kv_heads : int or array of int, optional
        Heads; only their ratio matters (grouped-query attention shrinks the cache).
    workload : Workload, optional
        Hardware, batch, prompt and output tokens and dtype (default :class:`Workload`).
    vocab : int
        Vocabulary size (tokens), for the embedding's parameters.
    """
    serving = workload if workload is not None else Workload()
    layers = np.asarray(n_layers, dtype=np.float64)
    width = np.asarray(d_model, dtype=np.float64)
    kv_fraction: float | NDArray[np.float64] = 1.0
    if n_heads is not None and n_kv_heads is not None:
        kv_fraction = np.asarray(n_kv_heads, dtype=np.float64) / np.asarray(n_heads, dtype=np.float64)
    size = DTYPE_BYTES[serving.dtype]
    params = np.asarray(parameter_count(n_layers, d_model, n_heads, n_kv_heads, vocab=vocab), dtype=np.float64)
    weights = params * size / 1e9
    tokens = serving.input_tokens + serving.output_tokens
    cache = 2.0 * layers * width * kv_fraction * tokens * serving.batch * size / 1e9
    weights, cache = np.broadcast_arrays(weights, cache)
    return MemoryCheck(
        weights_gb=np.array(weights), kv_cache_gb=np.array(cache), memory_gb=weights + cache,
        capacity_gb=float(serving.device.memory_gb), hardware=serving.hardware_name,
    )
