#!/usr/bin/env python3
"""Exports all-MiniLM-L6-v2 to ONNX for the capstone's ONNX Runtime peer (served by peers/harness.py).

The graph is a torch module written from the BERT definition over the same model.safetensors as the Rust
encoder (embeddings, six post-LayerNorm encoder layers with the erf GELU, mean pooling over the attention
mask, L2 normalisation; the same arithmetic as peers/minilm_reference.py), exported with torch's TorchScript
exporter (`torch.onnx.export`, `dynamo=False` where the argument exists), opset 14, batch and sequence length
dynamic.

Input: a float32 `batch x length` matrix of WordPiece ids (the peers' wire format is float rows; ids < 2^24
are exact), 0 ([PAD]) marking padding: the attention mask is `ids != 0`, so a batch padded with zeros gives the
embeddings of the unpadded sentences. Output: `batch x 384` unit-norm sentence embeddings.

Usage: minilm_export.py MODEL_DIR OUT.onnx  (prints a JSON line: torch version, opset, bytes).
"""

import inspect
import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from minilm_reference import load_safetensors  # noqa: E402

OPSET = 14


class MiniLmEncoder(torch.nn.Module):
    """Token ids (float, 0 = padding) -> normalised mean-pooled embeddings."""

    def __init__(self, model_dir):
        super().__init__()
        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        self.hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.head_dim = self.hidden // self.heads
        self.eps = config["layer_norm_eps"]
        self.layers = config["num_hidden_layers"]
        weights = load_safetensors(model_dir / "model.safetensors")
        self.names = {}
        for index, (name, tensor) in enumerate(sorted(weights.items())):
            if not tensor.is_floating_point():
                continue
            attribute = f"w{index}"
            self.register_buffer(attribute, tensor.float().contiguous())
            self.names[name] = attribute

    def w(self, name):
        return getattr(self, self.names[name])

    def forward(self, ids):
        input_ids = ids.long()
        mask = (input_ids != 0).float()
        batch, length = input_ids.shape[0], input_ids.shape[1]
        positions = torch.arange(length, device=ids.device)
        x = F.embedding(input_ids, self.w("embeddings.word_embeddings.weight"))
        x = x + F.embedding(positions, self.w("embeddings.position_embeddings.weight")).unsqueeze(0)
        x = x + self.w("embeddings.token_type_embeddings.weight")[0]
        x = F.layer_norm(x, (self.hidden,), self.w("embeddings.LayerNorm.weight"), self.w("embeddings.LayerNorm.bias"), self.eps)
        additive = (1.0 - mask)[:, None, None, :] * -1e9
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."

            def linear(name, inputs):
                return F.linear(inputs, self.w(p + name + ".weight"), self.w(p + name + ".bias"))

            def split(t):
                return t.reshape(batch, length, self.heads, self.head_dim).transpose(1, 2)

            q = split(linear("attention.self.query", x))
            k = split(linear("attention.self.key", x))
            v = split(linear("attention.self.value", x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / self.head_dim**0.5 + additive
            context = torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(batch, length, self.hidden)
            attended = F.layer_norm(
                linear("attention.output.dense", context) + x,
                (self.hidden,),
                self.w(p + "attention.output.LayerNorm.weight"),
                self.w(p + "attention.output.LayerNorm.bias"),
                self.eps,
            )
            intermediate = F.gelu(linear("intermediate.dense", attended))
            x = F.layer_norm(
                linear("output.dense", intermediate) + attended,
                (self.hidden,),
                self.w(p + "output.LayerNorm.weight"),
                self.w(p + "output.LayerNorm.bias"),
                self.eps,
            )
        pooled = (x * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)


def export(model_dir, out_path):
    module = MiniLmEncoder(model_dir).eval()
    example = torch.tensor([[101.0, 7592.0, 2088.0, 102.0], [101.0, 7592.0, 102.0, 0.0]])
    options = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False
    partial = str(out_path) + ".partial"
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            partial,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch", 1: "length"}, "output": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            **options,
        )
    os.replace(partial, out_path)
    return {"torch": torch.__version__, "opset": OPSET, "bytes": os.path.getsize(out_path)}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: minilm_export.py MODEL_DIR OUT.onnx")
    torch.set_num_threads(1)
    print(json.dumps(export(sys.argv[1], sys.argv[2])))


if __name__ == "__main__":
    main()
