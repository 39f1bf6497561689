"""Greedy decoding over a static KV cache, replayed from one captured CUDA graph.

Eager decoding (:func:`morph.latency.decoder.greedy_generate`) launches every
kernel of every layer from Python for each new token, so its latency grows with
the depth through host work. A graph-captured stack records one whole decode
step once and replays it for every token with a single launch; what remains is
the device time, mostly streaming the weights.

A CUDA graph replays fixed kernels on fixed memory, so the step here has no
Python-side shape changes:

- the key/value cache is preallocated to ``input_tokens + output_tokens``
  positions and every step attends over all of them, with a mask that hides
  the positions after the current one;
- the current position is a one-element tensor, not a Python integer, so the
  cache write (``index_copy_``) and the rotary angles (``index_select``) read it
  on the device;
- the step reads its input token from a static tensor and writes the greedy
  choice back into it and advances the position, so consecutive replays chain
  without any host work but the launch.

The prefill stays eager: it runs once per call and its cost does not scale with
the number of new tokens. :class:`StaticDecoder` runs the same step without
capture on any device, so the CPU can check that it chooses exactly the tokens
eager decoding chooses; :class:`GraphDecoder` captures it on CUDA.

This module imports torch at the top; ``import morph`` never imports it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..errors import LatencyError
from .decoder import Attention, Decoder, KVCache, rotate

__all__ = ["GRAPH_WARMUP_STEPS", "StaticDecoder", "GraphDecoder", "static_greedy_generate"]

GRAPH_WARMUP_STEPS = 3
"""Eager steps on a side stream before capture, as PyTorch's CUDA graph guide advises
(lets lazy initialisation, e.g. of cuBLAS workspaces, happen outside the graph)."""


def _zeroed_cache(model: Decoder, batch: int, max_tokens: int) -> KVCache:
    cache = KVCache.allocate(model, batch, max_tokens)
    # Masked positions still enter the attention product with weight zero, and
    # 0 * NaN is NaN: uninitialised memory must not hold NaNs.
    for tensor in (*cache.keys, *cache.values):
        tensor.zero_()
    return cache


def _static_attention(
    attention: Attention,
    x: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    position: torch.Tensor,
    visible: torch.Tensor,
) -> torch.Tensor:
    """One token's attention over the whole static cache (``x``: batch x 1 x d_model)."""
    batch, _, d_model = x.shape
    heads, kv_heads, head_dim = attention.n_heads, attention.n_kv_heads, attention.head_dim
    q, k, v = attention.in_proj(x).split([d_model, attention.kv_dim, attention.kv_dim], dim=-1)
    q = rotate(q.view(batch, 1, heads, head_dim).transpose(1, 2), cos, sin)
    k = rotate(k.view(batch, 1, kv_heads, head_dim).transpose(1, 2), cos, sin)
    v = v.view(batch, 1, kv_heads, head_dim).transpose(1, 2)
    keys.index_copy_(2, position, k)
    values.index_copy_(2, position, v)
    group = heads // kv_heads
    if group > 1:
        # repeat_interleave on dim 1, written as expand + reshape: fixed shapes, no host sync under capture.
        full = (batch, heads, keys.shape[2], head_dim)
        keys = keys[:, :, None].expand(batch, kv_heads, group, *full[2:]).reshape(full)
        values = values[:, :, None].expand(batch, kv_heads, group, *full[2:]).reshape(full)
    out = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible.view(1, 1, 1, -1))
    return attention.out_proj(out.transpose(1, 2).reshape(batch, 1, d_model))


class StaticDecoder:
    """Greedy decoding of one model with fixed-shape tensors only.

    Parameters
    ----------
    model : Decoder
        The model (evaluation mode, no gradients).
    batch : int
        Sequences generated together (sequences).
    max_tokens : int
        Positions of the static cache: prompt plus new tokens (tokens).

    Attributes
    ----------
    token : LongTensor of shape (batch, 1)
        Input of the next step; each step overwrites it with its greedy choice.
    position : LongTensor of shape (1,)
        Position of ``token``; each step advances it by one.
    """

    def __init__(self, model: Decoder, batch: int, max_tokens: int) -> None:
        device = model.head.weight.device
        self.model = model
        self.batch = batch
        self.max_tokens = max_tokens
        self.cache = _zeroed_cache(model, batch, max_tokens)
        self.token = torch.zeros((batch, 1), dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self._positions = torch.arange(max_tokens, device=device)

    def step(self) -> torch.Tensor:
        """Decode ``token`` at ``position``; return its logits (batch x vocab).

        Writes the token's keys and values into the cache, the greedy next
        token into :attr:`token`, and advances :attr:`position`: every change
        is in place, so the step can be captured and replayed.
        """
        model, cache = self.model, self.cache
        cos = cache.cos.index_select(0, self.position)
        sin = cache.sin.index_select(0, self.position)
        visible = self._positions <= self.position  # positions 0 .. position, as a (max_tokens,) mask
        x = model.embedding(self.token)
        for i, layer in enumerate(model.layers):
            attended = _static_attention(
                layer.attention, layer.attention_norm(x), cache.keys[i], cache.values[i], cos, sin,
                self.position, visible,
            )
            x = x + attended
            x = x + layer.feed_forward(layer.ffn_norm(x))
        logits = model.head(model.norm(x))[:, -1]
        self.token.copy_(logits.argmax(dim=-1, keepdim=True))
        self.position.add_(1)
        return logits

    def prefill(self, prompt: torch.Tensor) -> torch.Tensor:
        """Eager pass over ``prompt`` into the static cache; set :attr:`token` and :attr:`position`.

        Returns the logits the first new token is chosen from (batch x vocab).
        """
        batch, input_tokens = prompt.shape
        if batch != self.batch or input_tokens >= self.max_tokens:
            raise LatencyError(
                f"a prompt of shape {tuple(prompt.shape)} does not fit this static cache "
                f"(batch {self.batch}, {self.max_tokens} positions)"
            )
        logits = self.model(prompt, self.cache, 0, last_only=True)[:, -1]
        self.token.copy_(logits.argmax(dim=-1, keepdim=True))
        self.position.fill_(input_tokens)
        return logits

    def _advance(self) -> torch.Tensor:
        return self.step()

    def generate(self, prompt: torch.Tensor, output_tokens: int) -> torch.Tensor:
        """Greedy decoding of exactly ``output_tokens`` new tokens (batch x output_tokens)."""
        if output_tokens < 1 or prompt.shape[1] + output_tokens > self.max_tokens:
            raise LatencyError(
                f"output_tokens must be 1 to {self.max_tokens - prompt.shape[1]} for this static cache, "
                f"got {output_tokens}"
            )
        new = torch.empty((self.batch, output_tokens), dtype=torch.long, device=prompt.device)
        self.prefill(prompt)
        new[:, 0] = self.token[:, 0]
        for step in range(1, output_tokens):
            self._advance()
            new[:, step] = self.token[:, 0]
        return new


class GraphDecoder(StaticDecoder):
    """:class:`StaticDecoder` whose step is captured once in a CUDA graph and replayed.

    Construction warms the step up on a side stream and captures it; each
    decode step of :meth:`generate` is then one ``CUDAGraph.replay``.

    Raises
    ------
    LatencyError
        The model is not on a CUDA device.
    """

    def __init__(self, model: Decoder, batch: int, max_tokens: int) -> None:
        if model.head.weight.device.type != "cuda":
            raise LatencyError("the cuda-graphs stack needs a CUDA device")
        super().__init__(model, batch, max_tokens)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_STEPS):
                # Each warm-up step writes position 0 only; the prefill overwrites it.
                self.position.zero_()
                self.step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.position.zero_()
        with torch.cuda.graph(self.graph):
            self.logits = self.step()

    def _advance(self) -> torch.Tensor:
        self.graph.replay()
        return self.logits


def static_greedy_generate(model: Decoder, prompt: torch.Tensor, output_tokens: int) -> torch.Tensor:
    """Greedy decoding of ``output_tokens`` new tokens over a static cache, without capture.

    The tokens equal :func:`morph.latency.decoder.greedy_generate`'s for the
    same model and prompt; this runs on any device.

    Parameters
    ----------
    model : Decoder
        The model.
    prompt : LongTensor of shape (batch, input_tokens)
        Prompt token ids.
    output_tokens : int
        New tokens (tokens), at least 1.

    Returns
    -------
    LongTensor of shape (batch, output_tokens)
    """
    decoder = StaticDecoder(model, prompt.shape[0], prompt.shape[1] + output_tokens)
    return decoder.generate(prompt, output_tokens)
