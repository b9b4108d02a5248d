"""The official openai client against the emulation server on loopback (fixed-latency fleet)."""

from __future__ import annotations

import math

import openai
import pytest

from twinfer.serve.text import WORDS


def client(server, **kwargs) -> openai.OpenAI:
    """An OpenAI client pointed at ``server`` (no retries, so 429s surface)."""
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, **kwargs)


def test_models_lists_the_served_model(fixed_server):
    assert [m.id for m in client(fixed_server).models.list()] == ["fake-model"]


def test_completion_counts_tokens_and_is_deterministic(fixed_server):
    prompt = "The quick brown fox jumps over the lazy dog."
    c = client(fixed_server)
    first = c.completions.create(model="fake-model", prompt=prompt, max_tokens=7)
    again = c.completions.create(model="fake-model", prompt=prompt, max_tokens=7)
    assert first.choices[0].text == again.choices[0].text
    words = first.choices[0].text.split(" ")
    assert words[0] == "" and len(words) == 8 and all(w in WORDS for w in words[1:])
    assert first.choices[0].finish_reason == "length"
    # no tokenizer given: ceil(44 characters / 4) = 11 prompt tokens
    assert first.usage.prompt_tokens == math.ceil(len(prompt) / 4) == 11
    assert first.usage.completion_tokens == 7 and first.usage.total_tokens == 18


def test_streamed_completion_matches_the_whole_answer(fixed_server):
    c = client(fixed_server)
    whole = c.completions.create(model="fake-model", prompt="hello", max_tokens=5).choices[0].text
    chunks = list(
        c.completions.create(model="fake-model", prompt="hello", max_tokens=5, stream=True)
    )
    assert "".join(ch.choices[0].text for ch in chunks) == whole
    assert [ch.choices[0].finish_reason for ch in chunks] == [None] * 5 + ["length"]


def test_chat_stream_with_usage(fixed_server):
    c = client(fixed_server)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    whole = c.chat.completions.create(
        model="fake-model", messages=messages, max_completion_tokens=4
    )
    chunks = list(
        c.chat.completions.create(
            model="fake-model",
            messages=messages,
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content and len(text.split(" ")) == 4
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    # OpenAI's chat framing: ceil(9/4) + ceil(8/4) content tokens + 3 per message + 3 priming = 11
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens == 3 + 2 + 2 * 3 + 3


def test_stop_sequence_ends_the_answer_before_it(fixed_server):
    c = client(fixed_server)
    whole = (
        c.completions.create(model="fake-model", prompt="stop test", max_tokens=12).choices[0].text
    )
    stop_word = whole.split(" ")[4]  # the fourth word; it may also occur earlier
    expected = whole[: whole.index(" " + stop_word)]
    got = c.completions.create(
        model="fake-model", prompt="stop test", max_tokens=12, stop=[" " + stop_word]
    )
    assert got.choices[0].text == expected and got.choices[0].finish_reason == "stop"
    streamed = list(
        c.completions.create(
            model="fake-model", prompt="stop test", max_tokens=12, stop=" " + stop_word, stream=True
        )
    )
    assert "".join(ch.choices[0].text for ch in streamed) == expected
    assert streamed[-1].choices[0].finish_reason == "stop"
    assert fixed_server.app.state.fleet().in_flight == 0  # the rest was cancelled in the fleet


def test_unknown_model_is_404(fixed_server):
    with pytest.raises(openai.NotFoundError) as info:
        client(fixed_server).completions.create(model="gpt-9", prompt="x", max_tokens=2)
    assert info.value.body["code"] == "model_not_found" and info.value.body["param"] == "model"


def test_n_other_than_one_is_400(fixed_server):
    with pytest.raises(openai.BadRequestError) as info:
        client(fixed_server).completions.create(model="fake-model", prompt="x", max_tokens=2, n=2)
    assert info.value.body["param"] == "n"


def test_queue_full_is_429(start_server):
    from twinfer.serve.app import ServeConfig
    from twinfer.serve.fixed import FixedLatencySim

    server = start_server(
        ServeConfig(model_name="m", context_tokens=1024, max_queue=1),
        lambda: FixedLatencySim(ttft_s=30.0, itl_s=0.01),
    )
    c = client(server)
    stream = c.completions.create(
        model="m", prompt="first", max_tokens=2, stream=True
    )  # waits 30 s
    with pytest.raises(openai.RateLimitError) as info:
        c.completions.create(model="m", prompt="second", max_tokens=2)
    assert info.value.status_code == 429 and info.value.body["type"] == "rate_limit_error"
    stream.close()
