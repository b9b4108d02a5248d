"""OpenAI request validation and error objects for the emulation server.

Requests are parsed by hand rather than by a schema library so that every
mistake gets OpenAI's status code and error object
(``{"error": {"message", "type", "param", "code"}}``, status 400 for bad
input, 404 for an unknown model) instead of a framework's 422. Sampling
parameters that do not change the shape of an answer (top_p, seed,
logit_bias, presence_penalty, ...) are accepted and ignored, as vLLM does.
Parameters that ask for a different kind of answer (tool calls, log
probabilities, a JSON response format) are refused with a 400 naming the
parameter, since silently ignoring them would hand the client an answer of
the wrong shape (see :data:`UNSUPPORTED_PARAMETERS`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from twinfer.serve.text import TokenCounter, count_chat_tokens

#: OpenAI's documented default for /v1/completions max_tokens.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
#: Most stop sequences OpenAI accepts ("Up to 4 sequences", API reference).
MAX_STOP_SEQUENCES = 4
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Parameters that change what an answer contains; the server emulates plain text only and refuses them
#: (null, false, an empty list and response_format {"type": "text"} mean "not asked" and pass).
UNSUPPORTED_PARAMETERS = ("tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs",
                          "response_format", "echo", "suffix")


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for key in UNSUPPORTED_PARAMETERS:
        value = body.get(key)
        if value is None or value is False or value == [] or (key == "response_format" and value == {"type": "text"}):
            continue
        if key == "tool_choice" and value == "none":
            continue
        raise ApiError(
            400,
            f"This emulation server generates plain text only; '{key}' is not supported. Remove it from "
            "the request (sampling parameters such as temperature, top_p and seed are accepted).",
            param=key,
            code="unsupported_parameter",
        )


class ApiError(Exception):
    """An error answered with OpenAI's error object and an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """OpenAI's error object."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class GenerationRequest:
    """A validated completion or chat-completion request."""

    kind: Literal["completion", "chat"]
    model: str
    prompt_text: str  # the prompt as text (seeds the synthetic answer)
    prompt_tokens: int  # tokens the fleet prefills
    max_tokens: int  # tokens wanted (the answer is exactly this long unless a stop hits)
    stream: bool
    include_usage: bool  # stream_options.include_usage
    stop: tuple[str, ...]
    temperature: float


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 ApiError."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"We could not parse the JSON body of your request: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def _type_error(param: str, expected: str, value: Any) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {type(value).__name__}.",
        param=param,
        code="invalid_type",
    )


def _opt_bool(body: dict[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _type_error(key, "a boolean", value)
    return value


def _opt_number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _type_error(key, "a number", value)
    if not low <= value <= high:
        raise ApiError(
            400,
            f"'{key}' must be between {low} and {high}, got {value}.",
            param=key,
            code="invalid_value",
        )
    return float(value)


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(key, "an integer", value)
    return value


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _type_error("stop", "a string or an array of strings", value)
    if len(value) > MAX_STOP_SEQUENCES:
        raise ApiError(
            400,
            f"'stop' accepts at most {MAX_STOP_SEQUENCES} sequences.",
            param="stop",
            code="invalid_value",
        )
    return tuple(s for s in value if s)


def _completion_prompt(body: dict[str, Any], counter: TokenCounter) -> tuple[str, int]:
    """(text, tokens) of a /v1/completions prompt: a string, or token ids (one prompt only)."""
    prompt = body.get("prompt")
    if prompt is None:
        raise ApiError(
            400,
            "Missing required parameter: 'prompt'.",
            param="prompt",
            code="missing_required_parameter",
        )
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one prompt
    if isinstance(prompt, str):
        return prompt, counter.count(prompt)
    if isinstance(prompt, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in prompt
    ):
        return " ".join(map(str, prompt)), len(prompt)
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        raise ApiError(
            400,
            "This server emulates one prompt per request; send a batch as separate requests.",
            param="prompt",
            code="invalid_value",
        )
    raise _type_error("prompt", "a string or an array of token ids", prompt)


def _message_text(content: Any, index: int) -> str:
    param = f"messages[{index}].content"
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise ApiError(
                    400,
                    "This server emulates text content parts only ({'type': 'text', 'text': ...}).",
                    param=param,
                    code="invalid_value",
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise _type_error(param, "a string or an array of content parts", content)


def _chat_prompt(body: dict[str, Any], counter: TokenCounter) -> tuple[str, int]:
    """(text, tokens) of /v1/chat/completions messages, OpenAI's per-message framing included."""
    messages = body.get("messages")
    if messages is None:
        raise ApiError(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list):
        raise _type_error("messages", "an array", messages)
    if not messages:
        raise ApiError(
            400,
            "'messages' must contain at least one message.",
            param="messages",
            code="invalid_value",
        )
    contents = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _type_error(f"messages[{i}]", "an object", message)
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise ApiError(
                400,
                f"Invalid value for 'messages[{i}].role': {role!r}.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        contents.append(_message_text(message.get("content"), i))
    text = "\n".join(f"{m['role']}: {c}" for m, c in zip(messages, contents, strict=True))
    return text, count_chat_tokens(counter, contents)


def parse_generation(
    body: dict[str, Any],
    kind: Literal["completion", "chat"],
    *,
    models: dict[str, int],
    counter: TokenCounter,
    chat_default_max_tokens: int,
) -> GenerationRequest:
    """Validate a request body against OpenAI's rules; ``models`` maps name -> context length."""
    model = body.get("model")
    if model is None:
        raise ApiError(
            400,
            "Missing required parameter: 'model'.",
            param="model",
            code="missing_required_parameter",
        )
    if not isinstance(model, str):
        raise _type_error("model", "a string", model)
    if model not in models:
        raise ApiError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    _refuse_unsupported(body)
    stream = _opt_bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _type_error("stream_options", "an object", options)
    if options is not None and not stream:
        raise ApiError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    include_usage = _opt_bool(options or {}, "include_usage")
    n = _opt_int(body, "n")
    if n is not None and n != 1:
        raise ApiError(
            400, f"This server emulates n=1 only; got n={n}.", param="n", code="invalid_value"
        )
    temperature = _opt_number(body, "temperature", 0.0, 2.0)
    _opt_number(body, "top_p", 0.0, 1.0)
    stop = _stop(body)

    if kind == "chat":
        text, prompt_tokens = _chat_prompt(body, counter)
        max_param = (
            "max_completion_tokens"
            if body.get("max_completion_tokens") is not None
            else "max_tokens"
        )
        default_max = chat_default_max_tokens
    else:
        text, prompt_tokens = _completion_prompt(body, counter)
        max_param, default_max = "max_tokens", COMPLETIONS_DEFAULT_MAX_TOKENS
    prompt_tokens = max(prompt_tokens, 1)  # an empty prompt still prefills a BOS token
    context = models[model]
    max_tokens = _opt_int(body, max_param)
    if max_tokens is None:
        max_tokens = max(1, min(default_max, context - prompt_tokens))
    elif max_tokens < 1:
        raise ApiError(
            400,
            f"Invalid '{max_param}': integer below minimum value. Expected a value >= 1, "
            f"but got {max_tokens} instead.",
            param=max_param,
            code="integer_below_min_value",
        )
    if prompt_tokens + max_tokens > context:
        raise ApiError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, {max_tokens} in the "
            f"completion). Please reduce the prompt or '{max_param}'.",
            param=max_param,
            code="context_length_exceeded",
        )
    return GenerationRequest(
        kind=kind,
        model=model,
        prompt_text=text,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        stop=stop,
        temperature=1.0 if temperature is None else temperature,
    )
