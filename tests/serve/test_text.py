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


# ---- the served text tokenizes to the count the usage reports ------------------------------------------


def _bpe_tokenizer(path):
    """A byte-level BPE tokenizer trained here on sentences of WORDS (like GPT-2's, much smaller)."""
    tokenizers = pytest.importorskip("tokenizers")
    import numpy as np

    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, size=12)) for _ in range(400)] + ["serving fleets of accelerators"]
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=600, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    tok.save(str(path))
    return path


def _word_level_tokenizer(path):
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(WORDS[:20])}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.decoder = tokenizers.decoders.WordPiece()
    tok.save(str(path))
    return path


@pytest.mark.parametrize("make", [_bpe_tokenizer, _word_level_tokenizer], ids=["byte-level-bpe", "word-level"])
def test_filler_pieces_count_one_token_each_under_the_tokenizer(tmp_path, make) -> None:
    from twinfer.serve.text import filler_words

    counter = TokenizerCounter(make(tmp_path / "tokenizer.json"))
    words = filler_words(counter)
    for seed in range(5):
        for leading_space in (True, False):
            text = SyntheticText(seed, 300, leading_space=leading_space, words=words)
            answer = "".join(text.token(i) for i in range(300))
            assert counter.count(answer) == 300


def test_filler_under_the_four_character_rule_has_four_characters_per_token() -> None:
    from twinfer.serve.text import filler_words

    words = filler_words(ApproxTokenCounter())
    for leading_space in (True, False):
        answer = "".join(SyntheticText(7, 123, leading_space=leading_space, words=words).token(i) for i in range(123))
        assert len(answer) == 4 * 123 and ApproxTokenCounter().count(answer) == 123


@pytest.mark.parametrize("tokenizer", ["none", "bpe"])
@pytest.mark.parametrize("stream", [False, True])
def test_served_answers_tokenize_to_the_reported_usage(start_server, tmp_path, tokenizer, stream) -> None:
    import json

    import httpx

    from twinfer.serve.app import ServeConfig
    from twinfer.serve.fixed import FixedLatencySim

    counter = ApproxTokenCounter() if tokenizer == "none" else TokenizerCounter(_bpe_tokenizer(tmp_path / "t.json"))
    server = start_server(ServeConfig(model_name="m", context_tokens=8192),
                          lambda: FixedLatencySim(ttft_s=0.001, itl_s=0.0001), counter=counter)
    for path, body in (("/v1/completions", {"prompt": "hello there"}),
                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})):
        body = {"model": "m", "max_tokens": 200, **body}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
            r = httpx.post(server.url + path, json=body, timeout=30)
            chunks = [json.loads(line[6:]) for line in r.text.splitlines()
                      if line.startswith("data: {")]
            text = "".join((c["choices"][0].get("text") or c["choices"][0].get("delta", {}).get("content") or "")
                           for c in chunks if c["choices"])
            usage = next(c["usage"] for c in chunks if c.get("usage"))
        else:
            doc = httpx.post(server.url + path, json=body, timeout=30).json()
            choice = doc["choices"][0]
            text, usage = choice.get("text") or choice["message"]["content"], doc["usage"]
        assert usage["completion_tokens"] == 200
        assert counter.count(text) == usage["completion_tokens"], (path, text[:80])
