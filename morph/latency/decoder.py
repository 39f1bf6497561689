"""The paper's decoder-only transformer in plain PyTorch, with an explicit KV cache.

This is the architecture whose latency :mod:`morph.latency.measure` times, written so
that its parameter count is exactly :func:`morph.shapes.parameter_count`:

- token embedding ``V x d`` and an untied output head ``d x V`` (tying is an
  option), vocabulary ``V = 50432``;
- ``n_layers`` pre-norm blocks, each ``x + attn(norm(x))`` then
  ``x + ffn(norm(x))``;
- RMSNorm with a gain and no bias; no biases anywhere;
- attention with a fused ``q, k, v`` projection (as open_lm's ``in_proj``),
  rotary position embeddings (rotate-half form) on queries and keys, optional
  grouped-query attention with ``n_kv_heads`` key/value heads, and an output
  projection;
- SwiGLU feed-forward of hidden width :func:`morph.shapes.ffn_hidden` with the
  gate and up projections fused into one matrix (as xformers' ``SwiGLU`` that
  open_lm uses), then the down projection;
- a final RMSNorm before the head.

Generation is greedy with a preallocated key/value cache: one prefill pass
over the prompt, then one single-token pass per further new token.

This module imports torch at the top; ``import morph`` never imports it. Install
it with ``pip install -e .[measure]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ShapeError
from ..shapes import Shape

__all__ = [
    "DTYPES",
    "INIT_STD",
    "ROPE_BASE",
    "RMSNorm",
    "Attention",
    "SwiGLU",
    "Block",
    "Decoder",
    "KVCache",
    "build_decoder",
    "greedy_generate",
]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Names accepted for the weight and activation dtype."""

INIT_STD = 0.02
"""Standard deviation of the random weights (latency does not depend on their values)."""

ROPE_BASE = 10000.0
"""Base of the rotary embedding frequencies."""

NORM_EPS = 1e-5


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain and no bias.

    The statistic is computed in float32 so that bf16 and fp16 models
    normalise as accurately as fp32 ones.
    """

    def __init__(self, d_model: int, *, eps: float = NORM_EPS, device=None, dtype=None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # Rotate-half form: the two halves of each head are the real and imaginary
    # parts of head_dim / 2 complex numbers, each turned by its own angle.
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    """Causal self-attention with rotary embeddings and optional grouped-query heads."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = d_model // n_heads
        self.kv_dim = n_kv_heads * self.head_dim
        self.in_proj = nn.Linear(d_model, d_model + 2 * self.kv_dim, bias=False, device=device, dtype=dtype)
        self.out_proj = nn.Linear(d_model, d_model, bias=False, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, cache: "KVCache", layer: int, start: int) -> torch.Tensor:
        batch, t, d_model = x.shape
        q, k, v = self.in_proj(x).split([d_model, self.kv_dim, self.kv_dim], dim=-1)
        q = q.view(batch, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(batch, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(batch, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = cache.cos[start : start + t], cache.sin[start : start + t]
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        keys, values = cache.append(layer, k, v, start)
        group = self.n_heads // self.n_kv_heads
        if group > 1:
            keys = keys.repeat_interleave(group, dim=1)
            values = values.repeat_interleave(group, dim=1)
        if t == 1:
            # One new token sees the whole cache: no mask needed.
            out = F.scaled_dot_product_attention(q, keys, values)
        elif start == 0:
            out = F.scaled_dot_product_attention(q, keys, values, is_causal=True)
        else:
            # Several new tokens after a filled cache: token i sees keys 0..start+i.
            allowed = torch.arange(start + t, device=x.device)[None, :] <= (
                start + torch.arange(t, device=x.device)[:, None]
            )
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed)
        return self.out_proj(out.transpose(1, 2).reshape(batch, t, d_model))


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` with gate and up fused in one matrix."""

    def __init__(self, d_model: int, hidden: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.w12 = nn.Linear(d_model, 2 * hidden, bias=False, device=device, dtype=dtype)
        self.w3 = nn.Linear(hidden, d_model, bias=False, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * up)


class Block(nn.Module):
    """One pre-norm transformer block."""

    def __init__(self, shape: Shape, *, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.attention_norm = RMSNorm(shape.d_model, **kw)
        self.attention = Attention(shape.d_model, int(shape.n_heads), int(shape.n_kv_heads), **kw)  # type: ignore[arg-type]
        self.ffn_norm = RMSNorm(shape.d_model, **kw)
        self.feed_forward = SwiGLU(shape.d_model, shape.ffn_hidden, **kw)

    def forward(self, x: torch.Tensor, cache: "KVCache", layer: int, start: int) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cache, layer, start)
        return x + self.feed_forward(self.ffn_norm(x))


class Decoder(nn.Module):
    """Decoder-only language model of one :class:`~morph.shapes.Shape`.

    Parameters
    ----------
    shape : Shape
        Depth, width, heads, vocabulary, embedding tying.
    device, dtype : optional
        Where and in what precision the weights live.
    """

    def __init__(self, shape: Shape, *, device=None, dtype=None) -> None:
        super().__init__()
        if shape.head_dim % 2:
            raise ShapeError(
                f"rotary embeddings need an even head dimension; {shape.d_model} / {shape.n_heads} heads "
                f"gives {shape.head_dim}"
            )
        self.shape = shape
        kw = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(shape.vocab, shape.d_model, **kw)
        self.layers = nn.ModuleList(Block(shape, **kw) for _ in range(shape.n_layers))
        self.norm = RMSNorm(shape.d_model, **kw)
        self.head = nn.Linear(shape.d_model, shape.vocab, bias=False, **kw)
        if shape.tied_embeddings:
            self.head.weight = self.embedding.weight

    def forward(
        self, tokens: torch.Tensor, cache: "KVCache | None" = None, start: int = 0, *, last_only: bool = False
    ) -> torch.Tensor:
        """Logits for ``tokens`` placed at positions ``start, start + 1, ...``.

        Parameters
        ----------
        tokens : LongTensor of shape (batch, t)
            Token ids.
        cache : KVCache, optional
            Keys and values of positions ``0 .. start - 1``; this call appends
            those of ``tokens``. Without it a fresh cache is used and
            ``start`` must be 0 (a full recomputation).
        start : int
            Position of the first token (tokens).
        last_only : bool
            Apply the output head to the last position only, which is all
            greedy decoding needs.

        Returns
        -------
        Tensor of shape (batch, t, vocab), or (batch, 1, vocab) with ``last_only``
        """
        if cache is None:
            if start:
                raise ValueError("a forward pass without a cache starts at position 0")
            cache = KVCache.allocate(self, tokens.shape[0], tokens.shape[1])
        x = self.embedding(tokens)
        for i, layer in enumerate(self.layers):
            x = layer(x, cache, i, start)
        if last_only:
            x = x[:, -1:]
        return self.head(self.norm(x))


@dataclass
class KVCache:
    """Preallocated keys and values of every layer, and the rotary tables.

    Attributes
    ----------
    keys, values : list of Tensor of shape (batch, n_kv_heads, max_tokens, head_dim)
        One pair per layer, filled up to the current length.
    cos, sin : Tensor of shape (max_tokens, head_dim / 2)
        Rotary angles per position.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    cos: torch.Tensor
    sin: torch.Tensor

    @classmethod
    def allocate(cls, model: Decoder, batch: int, max_tokens: int) -> "KVCache":
        """An empty cache for ``batch`` sequences of up to ``max_tokens`` tokens."""
        shape = model.shape
        weight = model.head.weight
        size = (batch, int(shape.n_kv_heads), max_tokens, shape.head_dim)  # type: ignore[arg-type]
        keys = [torch.empty(size, device=weight.device, dtype=weight.dtype) for _ in range(shape.n_layers)]
        values = [torch.empty(size, device=weight.device, dtype=weight.dtype) for _ in range(shape.n_layers)]
        half = shape.head_dim // 2
        inv_freq = 1.0 / ROPE_BASE ** (torch.arange(half, device=weight.device, dtype=torch.float32) / half)
        angles = torch.outer(torch.arange(max_tokens, device=weight.device, dtype=torch.float32), inv_freq)
        return cls(keys, values, angles.cos().to(weight.dtype), angles.sin().to(weight.dtype))

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` at positions ``start ..``; return the keys and values so far."""
        end = start + k.shape[2]
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


def build_decoder(shape: Shape, *, dtype: str = "fp32", device: str = "cpu", seed: int = 0) -> Decoder:
    """A randomly initialised :class:`Decoder` in evaluation mode.

    Weights are drawn from a normal distribution (std :data:`INIT_STD`) after
    ``torch.manual_seed(seed)``; norm gains are ones. Gradients are off. The modules are built
    without initialisation on the ``meta`` device and then materialised, so a
    large model is initialised once, directly on ``device``.

    Parameters
    ----------
    shape : Shape
        The model shape.
    dtype : {"fp32", "bf16", "fp16"}
        Precision of weights and activations.
    device : str
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    seed : int
        Seed of the random weights.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    with torch.device("meta"):
        model = Decoder(shape, dtype=DTYPES[dtype])
    model = model.to_empty(device=device)
    if shape.tied_embeddings:
        model.head.weight = model.embedding.weight  # to_empty unties shared meta tensors
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, INIT_STD)
    # Only ever run forward: no gradients are tracked for the weights.
    return model.requires_grad_(False).eval()


def greedy_generate(
    model: Decoder, prompt: torch.Tensor, output_tokens: int, *, return_logits: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding of exactly ``output_tokens`` new tokens with a KV cache.

    One prefill pass over the prompt yields the first new token; each further
    token costs one single-token pass that reads and extends the cache. There
    is no end-of-sequence stop, so the length is always ``output_tokens``.

    Parameters
    ----------
    model : Decoder
        The model.
    prompt : LongTensor of shape (batch, input_tokens)
        Prompt token ids.
    output_tokens : int
        New tokens to generate (tokens), at least 1.
    return_logits : bool
        Also return the logits each new token was chosen from.

    Returns
    -------
    LongTensor of shape (batch, output_tokens)
        The new tokens; with ``return_logits`` also a float tensor of shape
        (batch, output_tokens, vocab).
    """
    if output_tokens < 1:
        raise ValueError("output_tokens must be at least 1")
    batch, input_tokens = prompt.shape
    cache = KVCache.allocate(model, batch, input_tokens + output_tokens)
    new = torch.empty((batch, output_tokens), dtype=torch.long, device=prompt.device)
    kept = [] if return_logits else None
    logits = model(prompt, cache, 0, last_only=True)[:, -1]
    for step in range(output_tokens):
        if kept is not None:
            kept.append(logits)
        new[:, step] = logits.argmax(dim=-1)
        if step + 1 < output_tokens:
            logits = model(new[:, step : step + 1], cache, input_tokens + step, last_only=True)[:, -1]
    if kept is not None:
        return new, torch.stack(kept, dim=1)
    return new
