"""One mask over every log record of the process: no configured secret reaches a log line.

Masking our own messages is not enough. aiohttp's `aiohttp.server` logger writes the start of a
header its parser rejects (a NUL byte, an overlong line) into an ERROR record — with the bearer
token in it when that is the header — and any library may put a secret into an exception's text.
So the mask is applied where every record is made (a log record factory), whoever logs it and
whichever handler (a file, stderr, pytest's capture) receives it: the message is formatted, the
exception text rendered, and both are masked before any handler sees them.

A rejected header is cut off after about 100 bytes, so a log line can hold a *piece* of a secret
(its first part, or a part cut at both ends). Every run of at least `MIN_PIECE` characters that
matches a secret at the same offset is masked too, not only the whole value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

MIN_PIECE = 8
MASK = "***"
_FORMATTER = logging.Formatter()


class SecretMask(logging.Filter):
    """Masks `secrets` (and their pieces of `MIN_PIECE`+ characters) in a record, in place."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._secrets = values
        windows = {
            s[i : i + MIN_PIECE] for s in values if len(s) >= MIN_PIECE
            for i in range(len(s) - MIN_PIECE + 1)
        }  # fmt: skip
        self._pieces = (
            re.compile("|".join(re.escape(w) for w in sorted(windows))) if windows else None
        )

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        if self._pieces is None or not self._pieces.search(text):
            return text
        merged: list[list[int]] = []
        for start, end in sorted(self._spans(text)):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        out, last = [], 0
        for start, end in merged:
            out += [text[last:start], MASK]
            last = end
        out.append(text[last:])
        return "".join(out)

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        """Spans of `text` that match a secret at some offset, grown as far as they match."""
        assert self._pieces is not None
        for found in self._pieces.finditer(text):
            window = found.group()
            best = (found.start(), found.end())
            for secret in self._secrets:
                offset = secret.find(window)
                while offset != -1:
                    start, end = found.start(), found.end()
                    at = offset
                    while start > 0 and at > 0 and text[start - 1] == secret[at - 1]:
                        start, at = start - 1, at - 1
                    at = offset + MIN_PIECE
                    while end < len(text) and at < len(secret) and text[end] == secret[at]:
                        end, at = end + 1, at + 1
                    if end - start > best[1] - best[0]:
                        best = (start, end)
                    offset = secret.find(window, offset + 1)
            yield best

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format: logging reports it later, with the raw message
            message = str(record.msg)
            record.args = None
        masked = self.mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def secret_values(values: Iterable[str | None]) -> list[str]:
    """The values worth masking: set, and each line of a multi-line one (a PEM key) too."""
    out: list[str] = []
    for value in values:
        if not value or len(value.strip()) < 4:
            continue
        out.append(value)
        out += [line.strip() for line in value.splitlines() if len(line.strip()) >= 16]
    return out


@contextmanager
def masking(secrets: Iterable[str]) -> Iterator[SecretMask]:
    """Mask `secrets` in every log record made in this process while the block runs."""
    mask = SecretMask(secrets)
    previous = logging.getLogRecordFactory()
    active = True

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if active:
            mask.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield mask
    finally:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(previous)
        else:  # another factory was installed over this one meanwhile: it stays, ours idles
            active = False
