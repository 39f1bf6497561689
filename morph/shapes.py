"""Model shapes: parameter counts, aspect ratio, FLOPs and shape enumeration.

The architecture is the one the paper trained (open_lm): a decoder-only
transformer with SwiGLU feed-forward blocks, gain-only RMS norms, no biases,
vocabulary V = 50432 and an untied output head. ``N`` counts *all*
parameters, input embedding and output head included:

    ffn(d)  = 256 * ceil(int(8 d / 3) / 256)
    N(d, L) = L * (4 d^2 + 3 d ffn(d) + 2 d) + d + 2 V d

which reproduces every ``N`` in ``data/morph_runs.csv`` exactly. Grouped-query
attention (fewer key/value heads) and tied embeddings are options.

Every function accepts scalars or numpy arrays and broadcasts; counts are
returned as ``int64`` arrays (exact up to 9.2e18 parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import ShapeError

__all__ = [
    "VOCAB_SIZE",
    "DEFAULT_HEAD_DIM",
    "Shape",
    "ShapeGrid",
    "ffn_hidden",
    "parameter_count",
    "non_embedding_parameters",
    "embedding_parameters",
    "aspect_ratio",
    "training_flops",
    "inference_flops_per_token",
    "default_n_heads",
    "enumerate_shapes",
    "parse_shape",
]

VOCAB_SIZE = 50432
"""Vocabulary of the GPT-NeoX tokenizer padded to a multiple of 64, as trained in the paper."""

DEFAULT_HEAD_DIM = 64
"""Head dimension used when a shape does not say how many heads it has."""

IntArray = NDArray[np.int64]


def ffn_hidden(d_model: ArrayLike, multiple_of: int = 256) -> IntArray:
    """Hidden width of the SwiGLU feed-forward block.

    ``int(8 d / 3)`` rounded up to a multiple of ``multiple_of`` (the open_lm
    rule, which keeps the SwiGLU block's parameter count near that of a 4d
    GELU block).

    Parameters
    ----------
    d_model : int or array of int
        Residual stream width (units: features).
    multiple_of : int
        Rounding granularity of the hidden width.

    Returns
    -------
    ndarray of int64
        Feed-forward hidden width (features).
    """
    d = np.asarray(d_model, dtype=np.int64)
    raw = (8 * d) // 3
    return (-(-raw // multiple_of)) * multiple_of


def _per_layer_parameters(
    d_model: IntArray, ffn: IntArray, kv_fraction_num: IntArray, kv_fraction_den: IntArray
) -> IntArray:
    # Q and O are d x d; K and V shrink with grouped-query attention to
    # d x (d * n_kv_heads / n_heads). Three d x ffn matrices for SwiGLU, two
    # gain vectors for the pre-attention and pre-feed-forward norms.
    kv = 2 * d_model * (d_model * kv_fraction_num // kv_fraction_den)
    return 2 * d_model * d_model + kv + 3 * d_model * ffn + 2 * d_model


def _heads(d_model: IntArray, n_heads: ArrayLike | None, n_kv_heads: ArrayLike | None) -> tuple[IntArray, IntArray]:
    heads = default_n_heads(d_model) if n_heads is None else np.asarray(n_heads, dtype=np.int64)
    kv = heads if n_kv_heads is None else np.asarray(n_kv_heads, dtype=np.int64)
    return np.broadcast_arrays(heads, kv)  # type: ignore[return-value]


def embedding_parameters(d_model: ArrayLike, vocab: int = VOCAB_SIZE, tied_embeddings: bool = False) -> IntArray:
    """Parameters of the input embedding and output head (and nothing else).

    Parameters
    ----------
    d_model : int or array of int
        Residual stream width.
    vocab : int
        Vocabulary size (tokens).
    tied_embeddings : bool
        Whether the output head shares the input embedding matrix.

    Returns
    -------
    ndarray of int64
        ``V d`` when tied, ``2 V d`` otherwise (parameters).
    """
    d = np.asarray(d_model, dtype=np.int64)
    return (1 if tied_embeddings else 2) * int(vocab) * d


def non_embedding_parameters(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    n_heads: ArrayLike | None = None,
    n_kv_heads: ArrayLike | None = None,
    *,
    ffn: ArrayLike | None = None,
) -> IntArray:
    """Parameters of the transformer blocks and the final norm (no embeddings).

    Parameters
    ----------
    n_layers, d_model : int or array of int
        Depth (blocks) and width (features).
    n_heads, n_kv_heads : int or array of int, optional
        Query heads and key/value heads. Without them attention is
        multi-head (``n_kv_heads == n_heads``), where the head count does not
        change the parameter count.
    ffn : int or array of int, optional
        Feed-forward hidden width; defaults to :func:`ffn_hidden`.

    Returns
    -------
    ndarray of int64
        Parameters.
    """
    layers = np.asarray(n_layers, dtype=np.int64)
    d = np.asarray(d_model, dtype=np.int64)
    hidden = ffn_hidden(d) if ffn is None else np.asarray(ffn, dtype=np.int64)
    if n_heads is None and n_kv_heads is None:
        heads = kv = np.ones_like(d)
    else:
        heads, kv = _heads(d, n_heads, n_kv_heads)
    return layers * _per_layer_parameters(d, hidden, kv, heads) + d


def parameter_count(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    n_heads: ArrayLike | None = None,
    n_kv_heads: ArrayLike | None = None,
    *,
    ffn: ArrayLike | None = None,
    vocab: int = VOCAB_SIZE,
    tied_embeddings: bool = False,
) -> IntArray:
    """Total parameter count ``N`` as the paper counts it (embeddings included).

    Parameters
    ----------
    n_layers, d_model : int or array of int
        Depth (blocks) and width (features).
    n_heads, n_kv_heads : int or array of int, optional
        Query and key/value heads (see :func:`non_embedding_parameters`).
    ffn : int or array of int, optional
        Feed-forward hidden width; defaults to :func:`ffn_hidden`.
    vocab : int
        Vocabulary size (tokens).
    tied_embeddings : bool
        Whether the output head shares the input embedding.

    Returns
    -------
    ndarray of int64
        Parameters.

    Examples
    --------
    >>> int(parameter_count(12, 3072))  # Morph-1B
    1668885504
    """
    return non_embedding_parameters(n_layers, d_model, n_heads, n_kv_heads, ffn=ffn) + embedding_parameters(
        d_model, vocab, tied_embeddings
    )


def aspect_ratio(n_layers: ArrayLike, d_model: ArrayLike) -> NDArray[np.float64]:
    """Aspect ratio ``R = d_model / n_layers`` (width per layer, dimensionless)."""
    return np.asarray(d_model, dtype=np.float64) / np.asarray(n_layers, dtype=np.float64)


def training_flops(N: ArrayLike, D: ArrayLike) -> NDArray[np.float64]:
    """Training compute ``C = 6 N D`` (FLOPs) for ``N`` parameters and ``D`` tokens."""
    return 6.0 * np.asarray(N, dtype=np.float64) * np.asarray(D, dtype=np.float64)


def inference_flops_per_token(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    context: ArrayLike = 0,
    n_heads: ArrayLike | None = None,
    n_kv_heads: ArrayLike | None = None,
    *,
    vocab: int = VOCAB_SIZE,
    tied_embeddings: bool = False,
) -> NDArray[np.float64]:
    """Forward-pass FLOPs to generate one token with ``context`` tokens cached.

    ``2 (N_non_embedding + V d)`` for the matrix products (the blocks and the
    output head; the input embedding is a lookup, not a product, and a tied
    head is still a product) plus ``4 n_layers context d_model`` for the
    attention scores and the weighted sum over the cache.

    Parameters
    ----------
    n_layers, d_model : int or array of int
        Depth and width.
    context : int or array of int
        Tokens already in the key/value cache.
    n_heads, n_kv_heads : optional
        Heads, for grouped-query attention.
    vocab : int
        Vocabulary size.
    tied_embeddings : bool
        Accepted for symmetry with :func:`parameter_count`; tying changes the
        parameter count, not the work per token.

    Returns
    -------
    ndarray of float64
        FLOPs per generated token.
    """
    blocks = non_embedding_parameters(n_layers, d_model, n_heads, n_kv_heads).astype(np.float64)
    matmul = 2.0 * (blocks + vocab * np.asarray(d_model, dtype=np.float64))
    attention = 4.0 * np.asarray(n_layers, np.float64) * np.asarray(context, np.float64) * np.asarray(d_model, np.float64)
    return matmul + attention


def default_n_heads(d_model: ArrayLike) -> IntArray:
    """Heads for a shape that does not name them: head dimension 64.

    Raises
    ------
    ShapeError
        If ``d_model`` is not a multiple of 64.
    """
    d = np.asarray(d_model, dtype=np.int64)
    if np.any(d % DEFAULT_HEAD_DIM):
        bad = int(np.ravel(d)[np.flatnonzero(np.ravel(d) % DEFAULT_HEAD_DIM)[0]])
        raise ShapeError(
            f"d_model {bad} is not a multiple of {DEFAULT_HEAD_DIM}; give the number of heads explicitly"
        )
    return d // DEFAULT_HEAD_DIM


@dataclass(frozen=True)
class Shape:
    """One decoder-only transformer shape.

    Parameters
    ----------
    n_layers : int
        Number of transformer blocks (depth).
    d_model : int
        Residual stream width (features).
    n_heads : int, optional
        Query heads; defaults to ``d_model / 64``.
    n_kv_heads : int, optional
        Key/value heads for grouped-query attention; defaults to ``n_heads``.
    ffn : int, optional
        Feed-forward hidden width; defaults to the SwiGLU rule :func:`ffn_hidden`.
    vocab : int
        Vocabulary size (tokens).
    tied_embeddings : bool
        Whether the output head shares the input embedding matrix.
    """

    n_layers: int
    d_model: int
    n_heads: int | None = None
    n_kv_heads: int | None = None
    ffn: int | None = None
    vocab: int = VOCAB_SIZE
    tied_embeddings: bool = False

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "vocab"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ShapeError(f"{name} must be a positive whole number, got {value!r}")
        heads = int(default_n_heads(self.d_model)) if self.n_heads is None else self.n_heads
        kv = heads if self.n_kv_heads is None else self.n_kv_heads
        for name, value in (("n_heads", heads), ("n_kv_heads", kv)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ShapeError(f"{name} must be a positive whole number, got {value!r}")
        if self.d_model % heads:
            raise ShapeError(f"{heads} heads do not divide d_model {self.d_model}")
        if heads % kv:
            raise ShapeError(f"{kv} key/value heads do not divide {heads} query heads")
        object.__setattr__(self, "n_heads", int(heads))
        object.__setattr__(self, "n_kv_heads", int(kv))
        object.__setattr__(self, "n_layers", int(self.n_layers))
        object.__setattr__(self, "d_model", int(self.d_model))

    @property
    def head_dim(self) -> int:
        """Width of one attention head (features)."""
        return self.d_model // int(self.n_heads)  # type: ignore[arg-type]

    @property
    def ffn_hidden(self) -> int:
        """Feed-forward hidden width (features)."""
        return int(ffn_hidden(self.d_model)) if self.ffn is None else int(self.ffn)

    @property
    def aspect_ratio(self) -> float:
        """``d_model / n_layers``."""
        return self.d_model / self.n_layers

    @property
    def N(self) -> int:  # noqa: N802 - the field's name for it
        """Total parameters, embeddings included."""
        return int(
            parameter_count(
                self.n_layers,
                self.d_model,
                self.n_heads,
                self.n_kv_heads,
                ffn=self.ffn_hidden,
                vocab=self.vocab,
                tied_embeddings=self.tied_embeddings,
            )
        )

    @property
    def non_embedding_parameters(self) -> int:
        """Parameters outside the embedding and output head."""
        return int(
            non_embedding_parameters(self.n_layers, self.d_model, self.n_heads, self.n_kv_heads, ffn=self.ffn_hidden)
        )

    def __str__(self) -> str:
        return f"{self.n_layers}x{self.d_model}"


def parse_shape(text: str) -> Shape:
    """Read ``"12x3072"`` or ``"12x3072x16"`` (layers x width [x heads]) into a :class:`Shape`.

    Raises
    ------
    ShapeError
        If the text is not of that form or the shape is invalid.
    """
    parts = str(text).lower().replace("×", "x").split("x")
    if len(parts) not in (2, 3) or not all(p.strip().isdigit() for p in parts):
        raise ShapeError(f"shape {text!r} is not of the form LAYERSxWIDTH or LAYERSxWIDTHxHEADS, e.g. 12x3072")
    numbers = [int(p) for p in parts]
    return Shape(numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else None)


@dataclass(frozen=True)
class ShapeGrid:
    """Many shapes as parallel arrays (one element per shape).

    Attributes
    ----------
    n_layers, d_model, n_heads : ndarray of int64
        Depth, width and query heads.
    N : ndarray of int64
        Total parameters.
    """

    n_layers: IntArray
    d_model: IntArray
    n_heads: IntArray
    N: IntArray

    def __len__(self) -> int:
        return int(self.n_layers.size)

    @property
    def aspect_ratio(self) -> NDArray[np.float64]:
        """``d_model / n_layers`` for each shape."""
        return aspect_ratio(self.n_layers, self.d_model)

    @classmethod
    def from_shapes(cls, shapes: Iterable[Shape]) -> "ShapeGrid":
        """Stack :class:`Shape` objects into a grid."""
        items = list(shapes)
        return cls(
            n_layers=np.array([s.n_layers for s in items], dtype=np.int64),
            d_model=np.array([s.d_model for s in items], dtype=np.int64),
            n_heads=np.array([s.n_heads for s in items], dtype=np.int64),
            N=np.array([s.N for s in items], dtype=np.int64),
        )

    def shape(self, i: int) -> Shape:
        """The ``i``-th shape as a :class:`Shape`."""
        return Shape(int(self.n_layers[i]), int(self.d_model[i]), int(self.n_heads[i]))

    def to_frame(self):  # -> pandas.DataFrame, imported lazily to keep this module numpy-only
        """The grid as a :class:`pandas.DataFrame` with an ``aspect_ratio`` column."""
        import pandas as pd

        return pd.DataFrame(
            {
                "n_layers": self.n_layers,
                "d_model": self.d_model,
                "n_heads": self.n_heads,
                "N": self.N,
                "aspect_ratio": self.aspect_ratio,
            }
        )


def enumerate_shapes(
    params_min: float,
    params_max: float,
    *,
    d_model_step: int = 64,
    d_model_min: int = 64,
    d_model_max: int = 16384,
    n_layers_max: int = 256,
    n_heads: int | None = None,
    head_dim: int | None = None,
    vocab: int = VOCAB_SIZE,
) -> ShapeGrid:
    """Every shape whose parameter count lies in ``[params_min, params_max]``.

    Widths run over a multiple-of-``d_model_step`` grid; for each width the
    valid depths form one contiguous range, found in closed form, so the whole
    enumeration is a handful of array expressions.

    Parameters
    ----------
    params_min, params_max : float
        Inclusive range of total parameters.
    d_model_step, d_model_min, d_model_max : int
        Width grid (features).
    n_layers_max : int
        Deepest shape considered (blocks).
    n_heads : int, optional
        Fixed number of query heads; widths it does not divide are skipped.
        Defaults to 16, as the paper kept at 1B, unless ``head_dim`` is given.
    head_dim : int, optional
        Instead of a fixed head count, a fixed head width: ``n_heads = d_model /
        head_dim`` and widths it does not divide are skipped.
    vocab : int
        Vocabulary size.

    Returns
    -------
    ShapeGrid
        Shapes sorted by width, then depth.

    Raises
    ------
    ShapeError
        If the range or grid is invalid.
    """
    if not (np.isfinite(params_min) and np.isfinite(params_max)) or params_min <= 0 or params_max < params_min:
        raise ShapeError(
            f"parameter range must satisfy 0 < min <= max, got min={params_min:g}, max={params_max:g}"
        )
    if d_model_step < 1 or d_model_min < 1 or d_model_max < d_model_min or n_layers_max < 1:
        raise ShapeError("width grid and depth limit must be positive with d_model_min <= d_model_max")
    if n_heads is not None and head_dim is not None:
        raise ShapeError("give n_heads or head_dim, not both")
    if n_heads is None and head_dim is None:
        n_heads = 16
    if (n_heads is not None and n_heads < 1) or (head_dim is not None and head_dim < 1):
        raise ShapeError("n_heads and head_dim must be positive")
    start = -(-d_model_min // d_model_step) * d_model_step
    widths = np.arange(start, d_model_max + 1, d_model_step, dtype=np.int64)
    if n_heads is not None:
        widths = widths[widths % n_heads == 0]
        heads_per_width = np.full(widths.shape, n_heads, dtype=np.int64)
    else:
        widths = widths[widths % head_dim == 0]  # type: ignore[operator]
        heads_per_width = widths // head_dim  # type: ignore[operator]
    per_layer = non_embedding_parameters(1, widths) - widths  # one block, without the final norm
    fixed = widths + embedding_parameters(widths, vocab)
    lo = np.maximum(1, -(-(np.ceil(params_min).astype(np.int64) - fixed) // per_layer))
    hi = np.minimum(n_layers_max, (np.floor(params_max).astype(np.int64) - fixed) // per_layer)
    counts = np.clip(hi - lo + 1, 0, None)
    total = int(counts.sum())
    width_index = np.repeat(np.arange(widths.size), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    layers = lo[width_index] + offsets
    d = widths[width_index]
    return ShapeGrid(
        n_layers=layers.astype(np.int64),
        d_model=d,
        n_heads=heads_per_width[width_index],
        N=layers * per_layer[width_index] + fixed[width_index],
    )
