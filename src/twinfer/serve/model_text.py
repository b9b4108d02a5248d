"""Real tokens for the emulation server from a small model folder (``twinfer serve --model-dir``).

The answer's tokens come from greedy decoding of the checkpoint with
twinfer's LPU numpy kernels (:class:`twinfer.lpu.executor.ReferenceModel`, the
forward the compiled-program executor is tested against, with a KV cache
across steps); their *timing* still comes from the simulated fleet. Decoding
runs in one worker thread shared by all requests (numpy releases the GIL in
its kernels), a token ahead of the pacing when it can; when it cannot keep
up, the token is sent as soon as it exists and the delay shows in the
``twinfer_pacing_lateness_seconds`` metric. Sampling is greedy whatever the
``temperature``. Without ``tokenizer.json`` the prompt's UTF-8 bytes (modulo
the vocabulary) are the prompt ids and each token is shown as `` <id>``.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from twinfer.serve.protocol import GenerationRequest


class ModelTokens:
    """One request's greedy tokens, produced in the worker thread and awaited by index."""

    def __init__(self, source: ModelTextSource, req: GenerationRequest) -> None:
        self._source = source
        self._loop = asyncio.get_running_loop()
        self._ids: list[int] = []
        self._texts: list[str] = []
        self._error: BaseException | None = None
        self._ready = asyncio.Event()
        self._stop = threading.Event()
        self._future = source.pool.submit(self._generate, req.prompt_text, req.max_tokens)

    def _generate(self, prompt_text: str, max_tokens: int) -> None:
        try:
            model = self._source.new_model()
            prompt = self._source.encode(prompt_text)
            ids = np.asarray([prompt], dtype=np.int64)
            decoded = ""
            for _ in range(max_tokens):
                if self._stop.is_set():
                    return
                logits = model.forward(ids)[:, -1]  # [1, vocab]
                nxt = int(np.argmax(logits[0]))
                self._ids.append(nxt)
                text = self._source.decode(self._ids)
                piece, decoded = text[len(decoded) :], text
                self._texts.append(piece)
                self._loop.call_soon_threadsafe(self._ready.set)
                ids = np.asarray([[nxt]], dtype=np.int64)
        except BaseException as exc:  # reported to the awaiting request
            self._error = exc
            self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self, index: int) -> str:
        """Text of token ``index``, waiting for the model when it is behind."""
        while len(self._texts) <= index:
            if self._error is not None:
                raise RuntimeError(f"model generation failed: {self._error}") from self._error
            self._ready.clear()
            if len(self._texts) > index:
                break
            await self._ready.wait()
        return self._texts[index]

    def close(self) -> None:
        """Stop generating (the request ended or was cancelled)."""
        self._stop.set()


class ModelTextSource:
    """Token text from a model folder (config.json + safetensors [+ tokenizer.json])."""

    def __init__(self, spec: Any, store: Any, tokenizer: Any, folder: Path) -> None:
        self.spec = spec
        self.store = store
        self.tokenizer = tokenizer
        self.folder = folder
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twinfer-model-text")

    @classmethod
    def open(cls, folder: Path, tokenizer_path: Path | None = None) -> ModelTextSource:
        """Read the folder's config and weights (ConfigError when unsupported or missing)."""
        from twinfer.lpu.weights import WeightStore, checkpoint_spec

        folder = Path(folder).expanduser()
        spec = checkpoint_spec(folder)
        store = WeightStore.open(folder, spec)
        path = tokenizer_path or (folder / "tokenizer.json")
        tokenizer = None
        if Path(path).is_file():
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(path))
        return cls(spec, store, tokenizer, folder)

    def new_model(self) -> Any:
        """A fresh forward with an empty KV cache (weights are shared through the store)."""
        from twinfer.lpu.executor import ReferenceModel

        return ReferenceModel(self.spec, self.store, dtype="bf16")

    def encode(self, text: str) -> list[int]:
        """Prompt ids (at least one)."""
        if self.tokenizer is not None:
            ids = list(self.tokenizer.encode(text).ids)
        else:
            ids = [b % self.spec.vocab_size for b in text.encode("utf-8")]
        return ids or [0]

    def decode(self, ids: list[int]) -> str:
        """Text of the answer so far."""
        if self.tokenizer is not None:
            return self.tokenizer.decode(ids, skip_special_tokens=False)
        return "".join(f" <{i}>" for i in ids)

    def start(self, req: GenerationRequest) -> ModelTokens:
        """Begin generating ``req``'s answer in the worker thread."""
        return ModelTokens(self, req)
