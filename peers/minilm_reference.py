#!/usr/bin/env python3
"""Independent reference for crates/minilm: all-MiniLM-L6-v2 sentence embeddings computed with PyTorch.

The encoder is written here from the BERT definition with torch.nn.functional (F.linear, F.layer_norm, the erf
GELU, softmax with an additive padding mask over a padded batch), reading the same model.safetensors and
tokenizer.json, then mean pooling over the attention mask and L2 normalisation, as sentence-transformers does.
It shares no code with the Rust encoder (which removes padding instead of masking it); the tokenization goes
through the `tokenizers` Python binding, so token ids are compared too.

Usage: minilm_reference.py MODEL_DIR < {"sentences": [...]}  ->  {"torch": version, "dtype": ..., "ids": [[...]],
"embeddings": [[...]]} on stdout.
"""

import json
import struct
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

MAX_LENGTH = 128


def load_safetensors(path):
    """Tensors of a safetensors file (8-byte little-endian header length, JSON header, raw data)."""
    raw = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    data = raw[8 + header_len :]
    dtypes = {"F32": torch.float32, "I64": torch.int64}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensor = torch.frombuffer(bytearray(data[start:end]), dtype=dtypes[info["dtype"]])
        tensors[name] = tensor.reshape(info["shape"])
    return tensors


def embed(model_dir, sentences, dtype=torch.float32):
    # Imported here so that peers/minilm_export.py can reuse load_safetensors without the tokenizers binding.
    from tokenizers import Tokenizer

    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    w = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_safetensors(model_dir / "model.safetensors").items()}
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_LENGTH)
    ids = [tokenizer.encode(s).ids for s in sentences]
    longest = max(len(i) for i in ids)
    input_ids = torch.zeros((len(ids), longest), dtype=torch.long)
    mask = torch.zeros((len(ids), longest), dtype=dtype)
    for row, sequence in enumerate(ids):
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    eps = config["layer_norm_eps"]
    positions = torch.arange(longest)
    x = w["embeddings.word_embeddings.weight"][input_ids]
    x = x + w["embeddings.position_embeddings.weight"][positions][None]
    x = x + w["embeddings.token_type_embeddings.weight"][torch.zeros_like(input_ids)]
    x = F.layer_norm(x, (hidden,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    additive = (1.0 - mask)[:, None, None, :] * torch.finfo(dtype).min
    batch = x.shape[0]
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def linear(name, inputs):
            return F.linear(inputs, w[p + name + ".weight"], w[p + name + ".bias"])

        def split(t):
            return t.view(batch, longest, heads, head_dim).transpose(1, 2)

        q = split(linear("attention.self.query", x))
        k = split(linear("attention.self.key", x))
        v = split(linear("attention.self.value", x))
        scores = q @ k.transpose(-1, -2) / head_dim**0.5 + additive
        context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, longest, hidden)
        attended = F.layer_norm(
            linear("attention.output.dense", context) + x,
            (hidden,),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        intermediate = F.gelu(linear("intermediate.dense", attended))
        x = F.layer_norm(
            linear("output.dense", intermediate) + attended,
            (hidden,),
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
            eps,
        )
    pooled = (x * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
    return ids, F.normalize(pooled, p=2, dim=1)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: minilm_reference.py MODEL_DIR < sentences.json")
    request = json.load(sys.stdin)
    sentences = request["sentences"]
    if not sentences:
        sys.exit("no sentences")
    torch.set_num_threads(1)
    with torch.no_grad():
        ids, embeddings = embed(sys.argv[1], sentences)
    json.dump(
        {"torch": torch.__version__, "dtype": "float32", "ids": ids, "embeddings": embeddings.tolist()},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
