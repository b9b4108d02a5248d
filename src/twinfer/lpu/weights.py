"""Real weights from a Hugging Face model folder, served as shards in a storage dtype.

A folder holds ``config.json`` and either ``model.safetensors`` or shards
listed in ``model.safetensors.index.json``. Tensors are read lazily with the
``safetensors`` numpy API; bf16 and fp8 tensors, which numpy cannot hold, are
read as raw bytes from the file (the safetensors layout: an 8-byte little-
endian header length, a JSON header with dtype, shape and data offsets, then
the data) and widened to fp32 exactly. A :class:`WeightStore` quantises each
matrix once, whole, so every shard of it shares the same per-row scales no
matter how the compiler split it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from twinfer.errors import ConfigError
from twinfer.lpu.kernels import QuantWeight, bf16_to_fp32, fp8_e4m3_to_fp32, quantize
from twinfer.models.hf_config import rope_from_config  # noqa: F401  (re-exported for callers)
from twinfer.models.spec import ModelSpec

#: Files holding the weights, in the order they are looked for (HF conventions).
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

#: Names of the tied embedding table and output head (HF Llama/Mistral/Qwen2).
EMBED_NAME = "model.embed_tokens.weight"
LM_HEAD_NAME = "lm_head.weight"

# safetensors dtype codes numpy can hold natively (safetensors numpy API).
_NUMPY_DTYPES = {"F64", "F32", "F16", "I64", "I32", "I16", "I8", "U8", "BOOL"}


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and the byte offset where its data starts."""
    with path.open("rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    return header, 8 + size


@dataclass(frozen=True)
class Checkpoint:
    """Where each tensor of a model folder lives: tensor name -> safetensors file."""

    folder: Path
    files_by_tensor: tuple[tuple[str, str], ...]  # (tensor name, file name), sorted

    @classmethod
    def open(cls, folder: str | Path) -> Checkpoint:
        """Index a folder's safetensors files; clear errors when none are there."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ConfigError(
                f"{folder}: model folder not found (give a folder with config.json and *.safetensors)"
            )
        index = folder / INDEX_FILE
        if index.exists():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as exc:
                raise ConfigError(
                    f"{index}: not a safetensors index (needs a 'weight_map' object): {exc}"
                ) from None
            pairs = sorted((str(k), str(v)) for k, v in weight_map.items())
            missing = sorted({f for _, f in pairs if not (folder / f).exists()})
            if missing:
                raise ConfigError(
                    f"{index}: lists shard files that are missing: {', '.join(missing)}"
                )
        else:
            files = sorted(folder.glob("*.safetensors"))
            if not files:
                raise ConfigError(
                    f"{folder}: no weights found (expected {SINGLE_FILE} or {INDEX_FILE} with shards); "
                    "twinfer run needs real weights in safetensors format"
                )
            pairs = sorted(
                (name, f.name)
                for f in files
                for name in _read_header(f)[0]
                if name != "__metadata__"
            )
        return cls(folder=folder, files_by_tensor=tuple(pairs))

    def names(self) -> list[str]:
        """All tensor names in the checkpoint, sorted."""
        return [n for n, _ in self.files_by_tensor]

    def file_of(self, name: str) -> Path:
        """The file that holds tensor ``name``."""
        for n, f in self.files_by_tensor:
            if n == name:
                return self.folder / f
        raise ConfigError(f"{self.folder}: tensor {name!r} is not in the checkpoint")

    def read_fp32(self, name: str) -> np.ndarray:
        """Tensor ``name`` widened to fp32 (exact for bf16, fp16, fp8 and fp32)."""
        from safetensors import safe_open

        path = self.file_of(name)
        with safe_open(str(path), framework="numpy") as fh:
            dtype = fh.get_slice(name).get_dtype()
            if dtype in _NUMPY_DTYPES:
                return np.asarray(fh.get_tensor(name), dtype=np.float32)
        header, start = _read_header(path)
        entry = header[name]
        begin, end = entry["data_offsets"]
        raw = np.fromfile(path, dtype=np.uint8, count=end - begin, offset=start + begin)
        shape = tuple(entry["shape"])
        if dtype == "BF16":
            return bf16_to_fp32(raw.view("<u2")).reshape(shape)
        if dtype == "F8_E4M3":
            return fp8_e4m3_to_fp32(raw).reshape(shape)
        raise ConfigError(f"{path}: tensor {name!r} has dtype {dtype}, which twinfer cannot read")


def attention_window(cfg: dict[str, Any]) -> int | None:
    """Sliding-window length of a config's attention, None when attention is global.

    Mistral uses ``sliding_window`` when it is set; Qwen2 only when
    ``use_sliding_window`` is true. The executor attends globally, which
    equals windowed attention while the context is within the window.
    """
    window = cfg.get("sliding_window")
    if not window:
        return None
    if "use_sliding_window" in cfg and not cfg["use_sliding_window"]:
        return None
    return int(window)


def checkpoint_spec(folder: str | Path) -> ModelSpec:
    """The ModelSpec of a model folder, with rope settings read in both HF config layouts."""
    from twinfer.models import load_model
    from twinfer.models.hf_config import read_config_file

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"{path}: model folder not found (give a folder with config.json and *.safetensors)"
        )
    spec = load_model(str(path))
    theta, scaling = rope_from_config(read_config_file(path))
    rope_scaling = tuple(sorted((scaling or {}).items()))
    return replace(spec, rope_theta=theta, rope_scaling=rope_scaling)


class WeightStore:
    """Weights of one checkpoint, handed out as shards ``W[r0:r1, c0:c1]`` in a storage dtype.

    Matrices are read and quantised lazily, once per (name, dtype), and kept;
    vectors (norm gains, biases) are kept in fp32. The LM head falls back to
    the embedding table when the model ties them.
    """

    def __init__(self, checkpoint: Checkpoint, tie_word_embeddings: bool = False) -> None:
        self.checkpoint = checkpoint
        self.tie_word_embeddings = tie_word_embeddings
        self._names = set(checkpoint.names())
        self._matrices: dict[tuple[str, str], QuantWeight] = {}
        self._vectors: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, folder: str | Path, spec: ModelSpec | None = None) -> WeightStore:
        """A store over a model folder (``spec`` tells whether embeddings are tied)."""
        tied = bool(spec.tie_word_embeddings) if spec is not None else False
        return cls(Checkpoint.open(folder), tie_word_embeddings=tied)

    def _resolve(self, name: str) -> str:
        if name in self._names:
            return name
        if name == LM_HEAD_NAME and self.tie_word_embeddings and EMBED_NAME in self._names:
            return EMBED_NAME
        raise ConfigError(
            f"{self.checkpoint.folder}: weight {name!r} is missing from the checkpoint "
            "(is this the model the program was compiled for?)"
        )

    def matrix(self, name: str, dtype: str) -> QuantWeight:
        """The whole matrix ``name`` stored in ``dtype`` (quantised once, then cached)."""
        key = (self._resolve(name), dtype)
        if key not in self._matrices:
            w = self.checkpoint.read_fp32(key[0])
            if w.ndim != 2:
                raise ConfigError(
                    f"{self.checkpoint.folder}: {name!r} is not a matrix (shape {w.shape})"
                )
            self._matrices[key] = quantize(w, dtype)
        return self._matrices[key]

    def shard(
        self, name: str, rows: tuple[int, int], cols: tuple[int, int], dtype: str
    ) -> QuantWeight:
        """The shard ``W[r0:r1, c0:c1]`` of matrix ``name`` stored in ``dtype``."""
        whole = self.matrix(name, dtype)
        out, inp = whole.shape
        if not (0 <= rows[0] < rows[1] <= out and 0 <= cols[0] < cols[1] <= inp):
            raise ConfigError(
                f"shard rows={rows} cols={cols} is outside {name!r} of shape {whole.shape}"
            )
        return whole.slice(tuple(rows), tuple(cols))  # type: ignore[arg-type]

    def vector(self, name: str) -> np.ndarray:
        """A 1-D tensor (norm gain, bias) in fp32."""
        if name not in self._vectors:
            self._vectors[name] = self.checkpoint.read_fp32(self._resolve(name)).reshape(-1)
        return self._vectors[name]

    def has(self, name: str) -> bool:
        """Whether the checkpoint holds ``name`` (tied LM head counts)."""
        try:
            self._resolve(name)
        except ConfigError:
            return False
        return True
