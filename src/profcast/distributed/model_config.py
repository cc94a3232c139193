"""A transformer from its HuggingFace ``config.json`` alone, and the per-layer calls of one training step.

Two spellings are read, told apart by their keys: GPT-2 style (``n_embd``, ``n_layer``, ``n_head``,
``n_inner``, ``n_positions``, ``vocab_size``) and Llama style (``hidden_size``, ``num_hidden_layers``,
``num_attention_heads``, ``num_key_value_heads``, ``intermediate_size``, ``vocab_size``; its MLP is
gated, three matrices). A key missing is one line naming the file and the key.

``layer_calls`` lists one tensor-parallel layer's forward calls on one GPU for one micro-batch: the
GEMMs as (m, n, k) of ``Y[m, n] = X[m, k] W[k, n]`` (Megatron's column/row split divides n or k by
TP), the attention core as its two batched GEMMs, and the memory-bound calls (norms, softmax, dropout,
activation, residual adds) as bytes moved. The backward of a GEMM is two GEMMs with permuted shapes
(``backward_gemms``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from profcast.errors import ProfcastError

GPT2_KEYS = ("n_embd", "n_layer", "n_head", "vocab_size")
LLAMA_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
VOCAB_PADDING = 128  # Megatron pads each TP share of the vocabulary to a multiple of this
BYTES_PER_ELEMENT = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a decoder-only transformer that set its work: widths, depth, heads, vocabulary."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    gated_mlp: bool = False  # Llama's SwiGLU: gate and up projections, then down
    tied_embeddings: bool = True  # the output projection reuses the token embedding (GPT-2; Llama: its own)
    max_positions: int | None = None

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads

    def parameters_per_layer(self) -> int:
        """Weights and biases of one transformer layer (attention, MLP, two norms)."""
        qkv = self.hidden * (self.hidden + 2 * self.kv_heads * self.head_dim)
        mlp = (3 if self.gated_mlp else 2) * self.hidden * self.ffn
        if self.gated_mlp:  # Llama: no biases, two RMSNorm scales
            return qkv + self.hidden * self.hidden + mlp + 2 * self.hidden
        # GPT-2: biases of QKV (3h), output (h), MLP (ffn, h); two LayerNorms (scale and shift, 4h)
        return qkv + self.hidden * self.hidden + mlp + 9 * self.hidden + self.ffn

    def parameters(self) -> int:
        """All parameters: the layers, the token embedding and (untied) the output projection."""
        embeddings = (1 if self.tied_embeddings else 2) * self.vocab * self.hidden
        return self.layers * self.parameters_per_layer() + embeddings

    def stage_parameters(self, tp: int, pp: int) -> float:
        """Parameters one GPU holds: its stage's share of the layers plus the vocabulary matrices it keeps.

        The first stage keeps the embedding, the last the output projection (the same matrix when tied).
        """
        vocabulary_matrices = 1 if self.tied_embeddings or pp > 1 else 2
        return (self.layers // pp * self.parameters_per_layer() + vocabulary_matrices * self.vocab * self.hidden) / tp


def read_model_config(path) -> ModelShape:
    """Read a HuggingFace config.json (GPT-2 or Llama style) into a ModelShape; bad files are one line."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ProfcastError(f"{path}: no such model config file") from None
    except OSError as error:
        raise ProfcastError(f"{path}: not a readable JSON model config ({error})") from None
    return model_shape_from_json(text, str(path), default_name=path.parent.name or path.stem)


def model_shape_from_json(text: bytes | str, source: str, default_name: str = "model") -> ModelShape:
    """A ModelShape from a config.json's text (a file's, or an upload's named ``source``); bad text is one line."""
    try:
        content = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProfcastError(f"{source}: not a readable JSON model config ({error})") from None
    if not isinstance(content, dict):
        raise ProfcastError(f"{source}: a model config must be a JSON object of HuggingFace config keys")
    return model_shape_from_mapping(content, source, default_name)


def model_shape_from_mapping(content: dict, source: str, default_name: str = "model") -> ModelShape:
    """A ModelShape from a config.json's keys, GPT-2 or Llama style; a key missing names the source and key."""
    llama = "hidden_size" in content or "num_hidden_layers" in content
    required = LLAMA_KEYS if llama else GPT2_KEYS
    for key in required:
        if key not in content:
            style = "Llama" if llama else "GPT-2"
            raise ProfcastError(
                f"{source}: {style}-style config.json is missing key {key!r} (needs {', '.join(required)})"
            )
    name = str(content.get("_name_or_path") or content.get("model_type") or default_name)
    if llama:
        hidden, heads = _count(content, "hidden_size", source), _count(content, "num_attention_heads", source)
        kv_heads = _count(content, "num_key_value_heads", source) if "num_key_value_heads" in content else heads
        shape = ModelShape(
            name=name,
            hidden=hidden,
            layers=_count(content, "num_hidden_layers", source),
            heads=heads,
            kv_heads=kv_heads,
            ffn=_count(content, "intermediate_size", source),
            vocab=_count(content, "vocab_size", source),
            gated_mlp=True,
            tied_embeddings=bool(content.get("tie_word_embeddings", False)),
            max_positions=content.get("max_position_embeddings"),
        )
    else:
        hidden, heads = _count(content, "n_embd", source), _count(content, "n_head", source)
        inner = content.get("n_inner")
        shape = ModelShape(
            name=name,
            hidden=hidden,
            layers=_count(content, "n_layer", source),
            heads=heads,
            kv_heads=heads,
            ffn=_count(content, "n_inner", source) if inner is not None else 4 * hidden,
            vocab=_count(content, "vocab_size", source),
            max_positions=content.get("n_positions"),
        )
    if shape.hidden % shape.heads:
        raise ProfcastError(f"{source}: hidden size {shape.hidden} is not divisible by {shape.heads} attention heads")
    if shape.heads % shape.kv_heads:
        raise ProfcastError(f"{source}: {shape.heads} attention heads are not divisible by {shape.kv_heads} KV heads")
    return shape


def _count(content: dict, key: str, source: str) -> int:
    value = content[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ProfcastError(f"{source}: key {key!r} must be a positive whole number, got {value!r}")
    return value


@dataclass(frozen=True)
class Gemm:
    """One matrix multiply ``Y[m, n] = X[m, k] W[k, n]`` of the forward pass."""

    name: str
    m: int
    n: int
    k: int

    @property
    def flops(self) -> float:
        """Multiply-adds counted as two FLOPs."""
        return 2.0 * self.m * self.n * self.k


@dataclass(frozen=True)
class LayerCalls:
    """One layer's forward work on one GPU for one micro-batch."""

    gemms: tuple[Gemm, ...]
    attention_gemms: tuple[Gemm, ...]  # Q K^T and softmax(.) V, every sample's and head's rows stacked
    memory_bytes: float  # norms, softmax, dropout, activation and residual adds: bytes read and written

    @property
    def flops(self) -> float:
        """The forward FLOPs of these calls."""
        return sum(g.flops for g in self.gemms + self.attention_gemms)


def layer_calls(shape: ModelShape, micro_batch: int, seq: int, tp: int, precision: str) -> LayerCalls:
    """The forward calls of one layer on one of ``tp`` tensor-parallel GPUs for one micro-batch."""
    tokens, size = micro_batch * seq, BYTES_PER_ELEMENT[precision]
    h, heads_here = shape.hidden, shape.heads // tp
    qkv_width = (shape.heads + 2 * shape.kv_heads) * shape.head_dim // tp
    mlp_in = (2 if shape.gated_mlp else 1) * shape.ffn // tp
    gemms = (
        Gemm("qkv", tokens, qkv_width, h),
        Gemm("attention_out", tokens, h, h // tp),
        Gemm("mlp_in", tokens, mlp_in, h),
        Gemm("mlp_out", tokens, h, shape.ffn // tp),
    )
    # a batched GEMM over samples and heads, timed as one GEMM of the stacked rows (its efficiency is a big GEMM's)
    stacked = micro_batch * heads_here * seq
    attention = (Gemm("scores", stacked, seq, shape.head_dim), Gemm("context", stacked, shape.head_dim, seq))
    scores = micro_batch * heads_here * seq * seq  # the attention matrix, unfused (no flash attention)
    activations = tokens * h
    elements = (
        2 * 2 * activations  # two norms, read and write
        + 2 * scores  # fused scale-mask-softmax: read, write
        + 3 * scores  # dropout on the probabilities: read, write, mask
        + 3 * tokens * shape.ffn // tp  # the MLP's activation (read, write; gated: the product)
        + 2 * 3 * activations  # two residual adds (two reads, one write)
        + 2 * 3 * activations  # two dropouts on the hidden stream
    )
    return LayerCalls(gemms, attention, float(elements * size))


def head_calls(shape: ModelShape, micro_batch: int, seq: int, tp: int, precision: str) -> LayerCalls:
    """The last stage's extra forward work: final norm, the vocabulary projection and the loss."""
    tokens, size = micro_batch * seq, BYTES_PER_ELEMENT[precision]
    vocab_here = math.ceil(shape.vocab / (VOCAB_PADDING * tp)) * VOCAB_PADDING  # Megatron pads the vocabulary
    gemms = (Gemm("logits", tokens, vocab_here, shape.hidden),)
    elements = 2 * tokens * shape.hidden + 3 * tokens * vocab_here  # norm; softmax cross-entropy
    return LayerCalls(gemms, (), float(elements * size))


def backward_gemms(gemm: Gemm) -> tuple[Gemm, Gemm]:
    """The two backward GEMMs of a forward GEMM: input gradient (m, k, n) and weight gradient (k, n, m)."""
    return Gemm(gemm.name + "_dgrad", gemm.m, gemm.k, gemm.n), Gemm(gemm.name + "_wgrad", gemm.k, gemm.n, gemm.m)
