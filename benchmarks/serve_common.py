"""Shared pieces of the serve benchmarks: a local tokenizer, a server subprocess on loopback.

The server always binds 127.0.0.1. The tokenizer is a byte-level BPE trained
offline in about a second on synthetic sentences of twinfer's answer words
(so each synthetic answer word is exactly one token), saved with transformers'
``PreTrainedTokenizerFast.save_pretrained`` so that load generators which need
a Hugging Face tokenizer folder (aiperf) run without network access.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
TWINFER = [
    sys.executable,
    "-c",
    "import sys; from twinfer.cli import main; sys.exit(main(sys.argv[1:]))",
]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_tokenizer(folder: Path, *, seed: int = 0) -> Path:
    """Train and save a small byte-level BPE tokenizer (vocab <= 1000) into ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from twinfer.serve.text import WORDS

    rng = np.random.default_rng(seed)
    lines = [" ".join(WORDS[i] for i in rng.integers(0, len(WORDS), 30)) for _ in range(3000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
    )
    tok.train_from_iterator(lines, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    fast.save_pretrained(str(folder))
    return folder


class ServerProcess:
    """``twinfer serve ARGS`` on 127.0.0.1 in a subprocess; a context manager."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            *TWINFER,
            "serve",
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"twinfer serve did not start; see {self.log}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()

    def traces(self) -> list[dict]:
        """The server's record of recent requests (simulated arrival and token times)."""
        return httpx.get(self.url + "/twinfer/requests", timeout=30).json()["data"]


def pct_diff(measured: float, predicted: float) -> float:
    """(measured - predicted) / predicted in percent."""
    return 100.0 * (measured - predicted) / predicted
