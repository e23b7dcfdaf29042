"""Which weight matrices of a Hugging Face checkpoint the analysis and edits touch, and how to
read (and rewrite) them one at a time.

A checkpoint's safetensors shards are read through their headers: every tensor is a byte
range of a file, so one matrix (or a block of its rows) is read with one `readinto`, without
mapping the file and without torch. That is what bounds the memory of the analysis and the
edits by a few matrices, whatever the model's size.

Matching is by module type and shape: the decoder layers' attention and MLP projections
(`layers.<i>.self_attn.{q,k,v,o}_proj`, `layers.<i>.mlp.{gate,up,down}_proj`), also when a
model stores them fused (`self_attn.qkv_proj`: rows q, k, v; `mlp.gate_up_proj`: rows gate,
up, as in Phi-3), split by the head counts and sizes of its `config.json`; each matrix's
shape is checked against that config. A 2-D tensor in a decoder layer that is none of these
(mixture-of-experts weights, routers, low-rank attention) stops the run with its name,
instead of being skipped silently.
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MATRIX_TYPES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: Decoder layers of the language model (plain, `model.`, or a multimodal model's `language_model.`).
_LAYER = re.compile(r"^(?:model\.)?(?:language_model\.)?(?:model\.)?layers\.(\d+)\.(.+)$")
_PLAIN = re.compile(r"^(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$")
_FUSED = {"self_attn.qkv_proj.weight": ("q_proj", "k_proj", "v_proj"), "mlp.gate_up_proj.weight": ("gate_proj", "up_proj")}
_MOE = re.compile(r"(^|\.)(experts|shared_experts?|block_sparse_moe|router|gate)(\.|$)")

_DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2), "F64": (np.float64, 8)}


@dataclass(frozen=True)
class Matrix:
    """One analysed matrix: `name` (the projection's own weight name, also for a fused
    tensor's part), its decoder layer and type, and where its rows lie in `tensor`."""

    name: str
    layer: int
    mtype: str
    tensor: str
    row0: int
    rows: int
    cols: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)


@dataclass(frozen=True)
class TensorInfo:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int


def weight_files(model_dir: str | os.PathLike) -> list[Path]:
    """The safetensors files of an HF model directory (single file or shards)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"'{model_dir}' holds no *.safetensors weights (save the model with safetensors)")
    return files


def read_header(path: str | os.PathLike) -> tuple[dict, int]:
    """(header dict, byte offset of the data section) of one safetensors file."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ValueError(f"'{path}' is not a safetensors file (shorter than its header length)")
        (size,) = struct.unpack("<Q", raw)
        if size > 100 * 2**20:
            raise ValueError(f"'{path}': safetensors header of {size} bytes; the file is damaged")
        header = json.loads(fh.read(size))
    return header, 8 + size


def tensor_index(model_dir: str | os.PathLike) -> dict[str, TensorInfo]:
    """{tensor name: where it lives} over all shards, from the headers only."""
    out = {}
    for path in weight_files(model_dir):
        header, base = read_header(path)
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            out[name] = TensorInfo(path, info["dtype"], tuple(info["shape"]), base + a, base + b)
    return out


def model_config(model_dir: str | os.PathLike) -> dict:
    """The model's config.json (the text config of a multimodal model), or {} if it has none."""
    path = Path(model_dir) / "config.json"
    if not path.exists():
        return {}
    cfg = json.loads(path.read_text())
    return cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg


def expected_shapes(cfg: dict) -> dict[str, tuple[int, int]]:
    """Shape of each projection type from a config.json ({} when the config lacks the sizes)."""
    try:
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        kv = int(cfg.get("num_key_value_heads") or heads)
        inter = int(cfg["intermediate_size"])
    except (KeyError, TypeError, ValueError):
        return {}
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    return {"q_proj": (heads * head_dim, hidden), "k_proj": (kv * head_dim, hidden), "v_proj": (kv * head_dim, hidden),
            "o_proj": (hidden, heads * head_dim), "gate_proj": (inter, hidden), "up_proj": (inter, hidden),
            "down_proj": (hidden, inter)}


def largest_matrix(cfg: dict) -> tuple[int, int]:
    """(rows, cols) of the biggest projection a config describes (what resources scale with)."""
    shapes = expected_shapes(cfg)
    if not shapes:
        raise ValueError("config has no hidden_size / num_attention_heads / intermediate_size")
    return max(shapes.values(), key=lambda s: s[0] * s[1])


def plan(model_dir: str | os.PathLike, matrices=MATRIX_TYPES, index: dict | None = None) -> list[Matrix]:
    """The matrices of `model_dir` whose type is in `matrices`, in (layer, type) order.

    Raises ValueError naming the tensor for a decoder-layer matrix that matches no known
    projection (e.g. mixture-of-experts weights), a fused tensor whose rows the config cannot
    split, or a shape that differs from the config's.
    """
    index = tensor_index(model_dir) if index is None else index
    cfg = model_config(model_dir)
    shapes = expected_shapes(cfg)
    wanted = set(matrices)
    out: list[Matrix] = []
    for tname, info in index.items():
        m = _LAYER.match(tname)
        if m is None or len(info.shape) < 2:
            continue
        layer, rest = int(m.group(1)), m.group(2)
        plain = _PLAIN.match(rest)
        if plain and len(info.shape) == 2:
            parts = [(plain.group(2), 0, info.shape[0])]
        elif rest in _FUSED and len(info.shape) == 2:
            parts = _split_fused(tname, rest, info.shape, shapes)
        elif _MOE.search(rest):
            raise ValueError(f"'{tname}' (shape {list(info.shape)}) is a mixture-of-experts weight; the SVD analysis "
                             f"and edits support dense decoder layers only ({', '.join(MATRIX_TYPES)})")
        else:
            raise ValueError(f"'{tname}' (shape {list(info.shape)}) in decoder layer {layer} matches no known "
                             f"projection ({', '.join(MATRIX_TYPES)}, fused qkv_proj / gate_up_proj)")
        for mtype, row0, rows in parts:
            if mtype not in wanted:
                continue
            name = tname if len(parts) == 1 else tname.replace(rest.split(".")[1], mtype)
            shape = (rows, info.shape[1])
            if mtype in shapes and shapes[mtype] != shape:
                raise ValueError(f"'{tname}'{'' if len(parts) == 1 else f' ({mtype} rows)'}: shape {list(shape)} but "
                                 f"the model's config.json implies {list(shapes[mtype])} for {mtype}")
            out.append(Matrix(name, layer, mtype, tname, row0, rows, info.shape[1]))
    if not out:
        raise ValueError(f"'{model_dir}' has no weights named layers.<i>.(self_attn|mlp).<{'|'.join(sorted(wanted))}>.weight")
    out.sort(key=lambda x: (x.layer, MATRIX_TYPES.index(x.mtype), x.name))
    return out


def _split_fused(tname: str, rest: str, shape, shapes: dict) -> list[tuple[str, int, int]]:
    types = _FUSED[rest]
    if not shapes:
        raise ValueError(f"'{tname}' is a fused {rest.split('.')[1]}; splitting it needs hidden_size, "
                         "num_attention_heads, num_key_value_heads and intermediate_size in the model's config.json")
    rows = [shapes[t][0] for t in types]
    if sum(rows) != shape[0]:
        raise ValueError(f"'{tname}': {shape[0]} rows, but the config's {'+'.join(types)} sizes add up to "
                         f"{sum(rows)} ({rows})")
    starts = np.cumsum([0] + rows[:-1])
    return [(t, int(s), int(r)) for t, s, r in zip(types, starts, rows)]


# ---------------------------------------------------------------- reading and writing
def _decode(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32, copy=False) if dtype == "F16" else raw


def read_matrix(index: dict, mat: Matrix, dtype=np.float32) -> np.ndarray:
    """One matrix as a C-contiguous `dtype` array (float32 by default; F16/BF16 upcast exactly),
    read from its byte range alone."""
    info = index[mat.tensor]
    if info.dtype not in _DTYPES:
        raise ValueError(f"'{mat.tensor}': dtype {info.dtype} is not supported (expected F32, F16, BF16 or F64)")
    np_t, size = _DTYPES[info.dtype]
    raw = np.empty(mat.rows * mat.cols, dtype=np_t)
    with open(info.file, "rb", buffering=0) as fh:
        fh.seek(info.start + mat.row0 * mat.cols * size)
        got = fh.readinto(memoryview(raw).cast("B"))
    if got != raw.nbytes:
        raise ValueError(f"'{info.file}': truncated data for '{mat.tensor}'")
    out = _decode(raw, info.dtype).reshape(mat.rows, mat.cols)
    return np.ascontiguousarray(out, dtype=dtype)


def encode(w: np.ndarray, dtype: str) -> bytes:
    """Bytes of `w` in a safetensors dtype (bf16 rounded to nearest even, as torch does)."""
    if dtype == "F32":
        return np.ascontiguousarray(w, dtype=np.float32).tobytes()
    if dtype == "F64":
        return np.ascontiguousarray(w, dtype=np.float64).tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(w, dtype=np.float16).tobytes()
    if dtype == "BF16":
        u = np.ascontiguousarray(w, dtype=np.float32).view(np.uint32)
        rounded = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
        return rounded.astype(np.uint16).tobytes()
    raise ValueError(f"dtype {dtype} is not supported (expected F32, F16, BF16 or F64)")


def write_matrix(index: dict, mat: Matrix, w: np.ndarray, root: str | os.PathLike) -> None:
    """Overwrite `mat`'s rows in the copy of its shard under `root` (same file name) in place."""
    info = index[mat.tensor]
    data = encode(w, info.dtype)
    row_bytes = (info.end - info.start) // info.shape[0]
    if len(data) != mat.rows * row_bytes:
        raise ValueError(f"'{mat.name}': {len(data)} bytes for {mat.rows} rows of {row_bytes}")
    with open(Path(root) / info.file.name, "r+b") as fh:
        fh.seek(info.start + mat.row0 * row_bytes)
        fh.write(data)


# ---------------------------------------------------------------- job resources
def job_mem_mb(shape: tuple[int, int], task: str, threads: int, gpu: bool = False, top_k: int | None = None) -> int:
    """Memory (MB) a streamed SVD job needs, from its largest matrix (p x q) and how many
    matrices it has in flight (one per thread on a CPU, four streams on a GPU), with 25%
    slack. task: 'reference', 'analyze' or 'edit'. Float32 inputs, float64 work arrays."""
    p, q = max(shape), min(shape)
    kb = q if top_k is None or 2 * min(top_k, q) > q else top_k
    inflight = 4 if gpu else max(1, threads)
    mb = 2.0**20
    if task == "reference":
        per = 4 * p * q + 8 * (3 * q * q + 2 * 256 * q)
        extra = 0
    elif task == "analyze":
        per = 2 * 4 * p * q + 8 * (4 * q * q + 2 * q * kb + 2 * 256 * q)
        extra = 2 * 4 * p * q + 4 * 8 * p * q  # W - W0 (power iteration); the null's float64 ΔW, E, W0 + E
    elif task == "edit":
        inflight = 4 if gpu else max(1, (threads + 1) // 2)
        per = 8 * (8 * p * q + 10 * q * q)  # two float64 inputs, two thin SVDs (+ LAPACK work), the result
        extra = 0
    else:
        raise ValueError(f"task={task!r}: expected reference, analyze or edit")
    base = 2500 if gpu else 700  # interpreter, numpy/pandas (and torch with CUDA)
    return int(base + 1.25 * (inflight * per + extra) / mb)
