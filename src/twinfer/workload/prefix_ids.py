"""Whether a workload's requests carry prefix block ids (what a prefix cache matches), known as early as possible.

Chat sessions carry them; a synthetic workload never does; a trace's format says
whether it can: the CSV formats (Azure, ShareGPT, twinfer CSV) have no column for
them, while a JSONL trace holds them only in rows with ``hash_ids`` (Mooncake) or
``prefix_block_ids`` (twinfer), which is known once it is read. So a scenario
is checked once when it is loaded and again once its workload is built, before
anything is simulated.
"""

from __future__ import annotations

from twinfer.workload.build import resolve_trace
from twinfer.workload.config import WorkloadConfig
from twinfer.workload.readers import detect_format, normalise_format
from twinfer.workload.types import MOONCAKE_BLOCK_TOKENS, Workload

#: Trace formats whose rows may carry prefix block ids.
PREFIX_ID_FORMATS = ("mooncake", "twinfer-jsonl")


def missing_prefix_ids(config: WorkloadConfig, workload: Workload | None = None) -> str | None:
    """Why the requests of ``config`` carry no prefix block ids; None when they do or, unread, may.

    Without ``workload`` only the config (and a trace's first lines) is looked at;
    with the built ``workload`` its ids decide.
    """
    if workload is not None and workload.prefix_block_ids is not None:
        return None
    if config.sessions is not None:
        return None
    if config.trace is None:
        return "a synthetic workload (prompt_tokens / output_tokens) has none"
    path = resolve_trace(config.trace)
    if not path.is_file():
        return None  # building the workload names the missing file
    fmt = normalise_format(config.format) if config.format else detect_format(path)
    if fmt not in PREFIX_ID_FORMATS:
        return f"trace {config.trace!r} is in the {fmt} CSV format, which has no prefix block id column"
    if workload is not None:
        key = "hash_ids" if fmt == "mooncake" else "prefix_block_ids"
        return f"no row of the {fmt} trace {config.trace!r} has {key}"
    return None


def prefix_block_tokens(config: WorkloadConfig) -> int | None:
    """Tokens per prefix block of the requests ``config`` builds, known before it is built; None: no ids.

    Sessions cut prompts in blocks of ``sessions.block_tokens``; a trace's ids are
    blocks of ``prefix_block_tokens``, else Mooncake's 512 (as the readers set them).
    """
    if config.sessions is not None:
        return int(config.sessions.block_tokens)
    if config.trace is not None:
        return int(config.prefix_block_tokens or MOONCAKE_BLOCK_TOKENS)
    return None
