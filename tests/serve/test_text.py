"""Prompt token counting and synthetic answers."""

from __future__ import annotations

import pytest

from twinfer.serve.text import (
    WORDS,
    ApproxTokenCounter,
    SyntheticText,
    TokenizerCounter,
    count_chat_tokens,
    request_seed,
)


def test_approximation_is_ceil_of_chars_over_four():
    counter = ApproxTokenCounter()
    assert [counter.count(t) for t in ["", "abc", "abcd", "abcde", "x" * 400]] == [0, 1, 1, 2, 100]


def test_chat_framing_adds_three_per_message_and_three_for_the_reply():
    assert count_chat_tokens(ApproxTokenCounter(), ["abcd", "abcdefgh"]) == 1 + 2 + 3 * 2 + 3


def test_tokenizer_counter_counts_words_of_a_word_level_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "the": 1, "fleet": 2, "cache": 3}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    counter = TokenizerCounter(tmp_path / "tokenizer.json")
    assert counter.count("the fleet cache unknownword the") == 5  # hand-counted words
    assert counter.method == "tokenizer.json"


def test_synthetic_text_is_deterministic_and_uses_the_word_list():
    seed = request_seed("completion", "hello", "5")
    a = [SyntheticText(seed, 5).token(i) for i in range(5)]
    b = [SyntheticText(seed, 5).token(i) for i in range(5)]
    assert a == b and all(t.startswith(" ") and t[1:] in WORDS for t in a)
    other = [SyntheticText(request_seed("completion", "hello!", "5"), 5).token(i) for i in range(5)]
    assert other != a
    assert not SyntheticText(seed, 5, leading_space=False).token(0).startswith(" ")
