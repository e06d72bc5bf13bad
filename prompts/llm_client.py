"""Talking to an OpenAI-compatible chat-completions server: the client, retries with backoff, reply cleaning.

The API key comes from ``OPENAI_API_KEY`` only and is never written anywhere: descriptions record the server
host, and every error message is scrubbed of the key before it is raised or logged. The ``openai`` client's own
retries are switched off so that the retries counted (``max_retries``) and the waits capped (``max_wait``) are
these ones.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass

import openai

from smie.features.store import SmieError

log = logging.getLogger(__name__)

PLACEHOLDER_KEY = "sk-local-no-key"
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}
_TRANSIENT_STATUS = {408, 409, 425, 429}
_MAX_ONE_WAIT = 60.0


class LLMUnavailable(SmieError):
    """The server kept failing (timeouts, refused connections, 429, 5xx) after every retry."""


class BadReply(Exception):
    """The server answered, but not with usable text (malformed JSON, no choices, empty or non-text content)."""


@dataclass(frozen=True)
class Reply:
    text: str
    seed: int


class ChatClient:
    """An OpenAI client plus the retry policy; ``host`` is the only trace of the server that is recorded."""

    def __init__(self, base_url: str | None, timeout: float, max_retries: int, backoff: float, max_wait: float):
        key = os.environ.get("OPENAI_API_KEY") or ""
        if not key and base_url is None and not os.environ.get("OPENAI_BASE_URL"):
            raise SmieError(
                "no API key: set OPENAI_API_KEY for OpenAI, or give --base-url for a local OpenAI-compatible server"
            )
        self._key = key
        self.client = openai.OpenAI(
            api_key=key or PLACEHOLDER_KEY, base_url=base_url, timeout=timeout, max_retries=0
        )
        url = self.client.base_url
        self.host = f"{url.host}:{url.port}" if url.port else str(url.host)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait

    def scrub(self, message: str) -> str:
        """The message with the API key (if any) replaced, so it can be raised or logged."""
        return message.replace(self._key, "***") if self._key else message

    def _once(self, model: str, prompt: str, temperature: float, max_tokens: int, seed: int) -> str:
        try:
            resp = self.client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}], temperature=temperature,
                max_tokens=max_tokens, seed=seed, n=1,
            )
        except openai.APIResponseValidationError as exc:
            raise BadReply(f"the reply is not a chat completion ({exc.message})") from None
        except json.JSONDecodeError as exc:
            raise BadReply(f"the reply is not valid JSON ({exc.msg} at char {exc.pos})") from None
        choices = getattr(resp, "choices", None)
        if isinstance(resp, str) or not choices:
            raise BadReply("the reply is not a chat completion with choices (malformed JSON?)")
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        if not isinstance(content, str):
            raise BadReply(f"the reply carries no text (content is {type(content).__name__})")
        text = clean_reply(content, truncated=getattr(choices[0], "finish_reason", None) == "length")
        if not text:
            raise BadReply("the reply text is empty")
        return text

    def complete(self, model: str, prompt: str, temperature: float, max_tokens: int, seed: int,
                 what: str) -> Reply | None:
        """Ask once, retrying transient failures with exponential backoff.

        Returns None when every attempt gave a bad reply (the caller counts it as failed and goes on); raises
        :class:`LLMUnavailable` when transient failures outlast the retries or ``max_wait`` seconds of waiting,
        and :class:`SmieError` at once for a refusal that retrying cannot fix (bad key, unknown model).
        A retry after a bad reply changes the seed, since the same seed would give the same bad reply.
        """
        waited, bad = 0.0, 0
        for attempt in range(self.max_retries + 1):
            use_seed = seed + 7919 * bad
            retry_after = None
            try:
                return Reply(self._once(model, prompt, temperature, max_tokens, use_seed), use_seed)
            except BadReply as exc:
                bad += 1
                problem, transient = f"{what}: unusable reply from {self.host}: {exc}", False
            except openai.APITimeoutError:
                problem, transient = f"{what}: {self.host} did not answer within the timeout", True
            except openai.APIConnectionError as exc:
                problem, transient = f"{what}: cannot connect to {self.host} ({exc.message})", True
            except openai.APIStatusError as exc:
                code = exc.status_code
                detail = self.scrub(str(exc.message))[:300]
                if code < 500 and code not in _TRANSIENT_STATUS:
                    raise SmieError(
                        f"{what}: {self.host} refused the request with HTTP {code}: {detail}"
                    ) from None
                problem, transient = f"{what}: {self.host} answered HTTP {code}: {detail}", True
                retry_after = _retry_after(exc)
            except Exception as exc:  # any other openai/httpx failure: only its scrubbed text may leave
                raise SmieError(self.scrub(f"{what}: request to {self.host} failed: {type(exc).__name__}: {exc}")
                                ) from None
            problem = self.scrub(problem)
            if attempt == self.max_retries or waited >= self.max_wait:
                why = f"gave up after {attempt + 1} attempts and {waited:.1f} s of waiting"
                if transient:
                    raise LLMUnavailable(f"{problem} ({why})")
                log.warning("%s (%s; not stored)", problem, why)
                return None
            delay = min(max(self.backoff * 2 ** attempt, retry_after or 0.0), _MAX_ONE_WAIT, self.max_wait - waited)
            log.info("%s; retrying in %.1f s", problem, delay)
            time.sleep(delay)
            waited += delay
        return None


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None


def clean_reply(text: str, truncated: bool = False) -> str:
    """One paragraph of plain text: the reply's first paragraph, lines joined, markdown and wrapping quotes off.

    When the reply was cut by ``max_tokens`` (``truncated``), it is cut back to its last full sentence if it
    has one, so a description never ends mid-word.
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()) if p.strip()]
    while len(paragraphs) > 1 and paragraphs[0].rstrip().endswith(":"):
        paragraphs.pop(0)
    if not paragraphs:
        return ""
    parts: list[str] = []
    for line in paragraphs[0].splitlines():
        bullet = re.match(r"^\s*(?:[-*\u2022]|\d+[.)])\s+", line)
        line = line[bullet.end():] if bullet else line
        line = line.replace("**", "").strip()
        if not line:
            continue
        item = bullet or re.match(r"^[A-Za-z][\w ]{0,24}:", line)
        if parts and item and not parts[-1].endswith((".", ";", ",", ":", "!", "?")):
            parts[-1] += ";"
        parts.append(line)
    out = re.sub(r"\s+", " ", " ".join(parts)).strip()
    while len(out) >= 2 and out[0] in _QUOTES and out[-1] == _QUOTES[out[0]] and out[0] not in out[1:-1]:
        out = out[1:-1].strip()
    if truncated:
        ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", out)]
        if ends:
            out = out[: ends[-1]]
    return out.strip()
