"""Token text for emulated responses, and prompt token counting.

The emulation server needs two things about tokens: how many tokens a prompt
has (that is what the simulated fleet prefills) and some text for each token
it emits. By default the text is synthetic: one English word per token, drawn
from a fixed list by a generator seeded from a hash of the prompt, so the same
request always gets the same answer. Prompt counting uses a Hugging Face
``tokenizer.json`` when one is given, otherwise a documented approximation.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from twinfer.errors import ConfigError

#: Words of synthetic answers: common short English words, chosen so each is
#: one token in typical BPE vocabularies (with its leading space). Fixed list;
#: changing it changes every synthetic answer.
WORDS: tuple[str, ...] = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "time",
    "about",
    "up",
    "out",
    "into",
    "than",
    "them",
    "only",
    "other",
    "new",
    "some",
    "could",
    "these",
    "two",
    "may",
    "first",
    "then",
    "do",
    "any",
    "like",
    "my",
    "now",
    "over",
    "such",
    "our",
    "man",
    "me",
    "even",
    "most",
    "made",
    "after",
    "also",
    "did",
    "many",
    "before",
    "must",
    "through",
    "back",
    "years",
    "where",
    "much",
    "your",
    "way",
    "well",
    "down",
    "should",
    "because",
    "each",
    "just",
    "those",
    "people",
    "how",
    "too",
    "little",
    "state",
    "good",
    "very",
    "make",
    "world",
    "still",
    "own",
    "see",
    "work",
    "long",
    "get",
    "here",
    "between",
    "both",
    "life",
    "being",
    "under",
    "never",
    "day",
    "same",
    "another",
    "know",
    "while",
    "last",
    "might",
    "us",
    "great",
    "old",
    "year",
    "off",
    "come",
    "since",
    "against",
    "go",
    "came",
    "right",
    "used",
    "take",
    "three",
    "model",
    "token",
    "fleet",
    "chip",
    "memory",
    "cache",
    "batch",
    "queue",
    "speed",
    "power",
    "cost",
    "data",
    "light",
    "water",
    "river",
    "stone",
    "green",
    "blue",
    "small",
    "large",
    "open",
    "house",
    "city",
    "road",
    "place",
)

#: Characters per token of the approximation used when no tokenizer is given.
#: OpenAI's rule of thumb for English text: "one token generally corresponds to
#: ~4 characters" (help.openai.com, "What are tokens and how to count them?").
APPROX_CHARS_PER_TOKEN = 4

#: Chat framing overhead: 3 tokens per message plus 3 that prime the reply, as in
#: OpenAI's cookbook "How to count tokens with tiktoken" (gpt-3.5-turbo/gpt-4 format).
CHAT_TOKENS_PER_MESSAGE = 3
CHAT_TOKENS_REPLY_PRIMING = 3


class TokenCounter(Protocol):
    """Counts the tokens of a prompt text; ``method`` names how (sent in a response header)."""

    @property
    def method(self) -> str:
        """How tokens are counted (``tokenizer.json`` or the approximation's name)."""
        ...

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        ...


@dataclass(frozen=True)
class ApproxTokenCounter:
    """ceil(characters / 4): OpenAI's rule of thumb, used when no tokenizer is available."""

    method: str = f"approx-{APPROX_CHARS_PER_TOKEN}-chars-per-token"

    def count(self, text: str) -> int:
        """ceil(len(text) / 4)."""
        return math.ceil(len(text) / APPROX_CHARS_PER_TOKEN)


class TokenizerCounter:
    """Exact counts from a Hugging Face ``tokenizer.json`` (the ``tokenizers`` library)."""

    method = "tokenizer.json"

    def __init__(self, path: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - tokenizers ships with transformers
            raise ConfigError(
                "counting prompt tokens with tokenizer.json needs the 'tokenizers' package; "
                "install it (pip install tokenizers) or omit the tokenizer"
            ) from exc
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise ConfigError(f"cannot read tokenizer {path}: {exc}") from exc

    def count(self, text: str) -> int:
        """Tokens of ``text`` without special tokens."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def single_token_pieces(self, limit: int = 4096) -> list[str]:
        """Texts of vocabulary entries (lowest ids first) that decode to letters after a space and
        encode back to exactly one token."""
        pieces = []
        for token_id in range(min(self._tokenizer.get_vocab_size(), limit)):
            text = self._tokenizer.decode([token_id])
            word = text.lstrip(" ")
            piece = " " + word
            if word.isalpha() and self.count(piece) == 1:
                pieces.append(piece)
        return pieces


def find_tokenizer(folder: Path | None) -> Path | None:
    """``folder/tokenizer.json`` (or ``folder`` itself when it is that file), if it exists."""
    if folder is None:
        return None
    folder = Path(folder).expanduser()
    if folder.is_file() and folder.name.endswith(".json"):
        return folder
    candidate = folder / "tokenizer.json"
    return candidate if candidate.is_file() else None


def make_counter(tokenizer_path: Path | None) -> TokenCounter:
    """A tokenizer-backed counter when ``tokenizer_path`` is given, else the approximation."""
    if tokenizer_path is None:
        return ApproxTokenCounter()
    return TokenizerCounter(tokenizer_path)


def count_chat_tokens(counter: TokenCounter, contents: Sequence[str]) -> int:
    """Prompt tokens of a chat: message contents plus OpenAI's per-message framing."""
    body = sum(counter.count(c) for c in contents)
    return body + CHAT_TOKENS_PER_MESSAGE * len(contents) + CHAT_TOKENS_REPLY_PRIMING


def request_seed(*parts: str) -> int:
    """A 64-bit seed from a SHA-256 of the request's text parts (stable across runs and hosts)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass(frozen=True)
class FillerWords:
    """The pieces synthetic answers are made of, each exactly one token under the server's own counting.

    ``spaced`` pieces (with their leading space) follow one another; a chat reply
    starts with a ``first`` piece (no leading space). A text of n pieces therefore
    counts n tokens, which is what ``usage.completion_tokens`` reports.
    """

    spaced: tuple[str, ...]
    first: tuple[str, ...]


#: The plain default: every word of WORDS (one token in typical BPE vocabularies, not checked).
DEFAULT_FILLER = FillerWords(spaced=tuple(" " + w for w in WORDS), first=WORDS)
#: Fewest pieces a filler vocabulary needs (fewer would make answers visibly repetitive).
MIN_FILLER_PIECES = 8


def filler_words(counter: TokenCounter) -> FillerWords:
    """Filler pieces that count one token each under ``counter``, and add up when joined.

    - ceil(chars / 4) counting: 4-character pieces (" the", "that"), so n pieces are
      exactly 4n characters, i.e. n tokens.
    - a tokenizer: WORDS pieces the tokenizer encodes as one token, checked also when
      all are joined; when too few survive, single-token pieces of its own vocabulary.
    """
    if isinstance(counter, ApproxTokenCounter):
        n = APPROX_CHARS_PER_TOKEN
        return FillerWords(spaced=tuple(" " + w for w in WORDS if len(w) == n - 1),
                           first=tuple(w for w in WORDS if len(w) == n))
    if not isinstance(counter, TokenizerCounter):
        return DEFAULT_FILLER
    spaced = [" " + w for w in WORDS if counter.count(" " + w) == 1]
    if len(spaced) < MIN_FILLER_PIECES:
        spaced = counter.single_token_pieces()
    spaced = _adds_up(counter, spaced)
    first = [p.lstrip() for p in spaced if counter.count(p.lstrip()) == 1 and
             counter.count(p.lstrip() + "".join(spaced)) == 1 + len(spaced)]
    if len(spaced) < MIN_FILLER_PIECES or not first:
        raise ConfigError("the tokenizer has too few one-token words to make answer text whose token count "
                          "matches usage; give a tokenizer of a text model (or none: ceil(chars/4) counting)")
    return FillerWords(spaced=tuple(spaced), first=tuple(first))


def _adds_up(counter: TokenCounter, pieces: list[str]) -> list[str]:
    """The pieces whose concatenation (in this order and repeated) counts one token per piece."""
    kept: list[str] = []
    for piece in pieces:
        trial = [*kept, piece]
        text = "".join(trial)
        if counter.count(text + text) == 2 * len(trial):
            kept = trial
    return kept


class SyntheticText:
    """Deterministic synthetic answer of up to ``max_tokens`` tokens, one filler piece per token.

    Token ``i`` is a ``spaced`` piece of ``words`` (a ``first`` piece, without its space,
    for the first token of a chat reply).
    """

    def __init__(self, seed: int, max_tokens: int, *, leading_space: bool = True,
                 words: FillerWords = DEFAULT_FILLER) -> None:
        rng = np.random.default_rng(seed)
        self._words = words
        self._ids = rng.integers(0, len(words.spaced), size=max_tokens)
        self._first = int(rng.integers(0, len(words.first)))
        self._leading_space = leading_space

    def token(self, index: int) -> str:
        """Text of token ``index`` (0-based)."""
        if index == 0 and not self._leading_space:
            return self._words.first[self._first]
        return self._words.spaced[int(self._ids[index])]
