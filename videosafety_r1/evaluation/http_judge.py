"""A judge behind any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, TGI, SGLang, hosted APIs).

Long evaluations meet flaky servers, so requests are retried with exponential backoff on timeouts, connection
errors, 429 and 5xx, waiting what a ``Retry-After`` header asks (seconds or an HTTP date, capped) when there is one; run concurrently from a thread pool; and cached on disk (JSONL keyed by the sha256 of model and
prompt) so a rerun pays only for what is new. A reply that cannot be read becomes a failed verdict with its error
recorded: it is counted, never taken as "safe", and never cached.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests

from .judges import Judge, JudgeItem, PromptTemplate, Verdict, get_prompt_template, parse_judge_reply, sha256_text

__all__ = ["OpenAIJudge", "JsonlCache"]

logger = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class JsonlCache:
    """Append-only ``{"key", "reply"}`` lines; a torn last line from a killed run is skipped."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self._data[row["key"]] = row["reply"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        logger.warning("skipping an unreadable line in judge cache %s", self.path)

    def get(self, key: str) -> str | None:
        return self._data.get(key)

    def put(self, key: str, reply: str) -> None:
        with self._lock:
            self._data[key] = reply
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        return len(self._data)


class OpenAIJudge(Judge):
    """LLM judge over HTTP. The API key is read from the environment variable named ``api_key_env`` (never stored
    in configs or results); with no such variable set, no Authorization header is sent (local servers)."""

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        template: str | PromptTemplate = "refusal_harm_json",
        max_retries: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 60.0,
        max_retry_after_s: float = 60.0,
        concurrency: int = 8,
        cache_path: str | os.PathLike[str] | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        name: str | None = None,
    ) -> None:
        self.model, self.base_url = model, base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.template = get_prompt_template(template)
        self.max_retries, self.backoff_s, self.timeout_s = max_retries, backoff_s, timeout_s
        self.max_retry_after_s = max_retry_after_s
        self.concurrency, self.max_tokens, self.temperature = max(1, concurrency), max_tokens, temperature
        self.cache = JsonlCache(cache_path) if cache_path else None
        self.name = name or f"openai:{model}"
        self.prompt_template_name = self.template.name
        self.prompt_template_version = self.template.version
        self.prompt_hash = self.template.hash
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0, "failures": 0, "retry_after_waits": 0}
        self._stats_lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        return {**super().info(), "model": self.model, "base_url": self.base_url, "temperature": self.temperature}

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def cache_key(self, prompt: str) -> str:
        return sha256_text(json.dumps([self.model, prompt], ensure_ascii=False))

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request(self, prompt: str) -> tuple[str | None, str | None]:
        """Return ``(reply_text, error)``; retries transient failures, not malformed bodies.

        The wait before retry ``k`` is ``backoff_s * 2**(k-1)``, or the server's ``Retry-After`` (at most
        ``max_retry_after_s``) when the failed reply carried one.
        """
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        url = f"{self.base_url}/chat/completions"
        error, asked = "no attempt made", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
                backoff = self.backoff_s * 2 ** (attempt - 1)
                time.sleep(backoff if asked is None else min(asked, self.max_retry_after_s))
            asked = None
            self._count("requests")
            try:
                resp = requests.post(url, json=body, headers=self._headers(), timeout=self.timeout_s)
            except (requests.Timeout, requests.ConnectionError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                logger.warning("judge request failed (attempt %d): %s", attempt + 1, error)
                continue
            if resp.status_code in _RETRY_STATUS:
                error = f"HTTP {resp.status_code}"
                asked = retry_after_seconds(resp.headers.get("Retry-After"))
                if asked is not None:
                    self._count("retry_after_waits")
                    error += f" (Retry-After {asked:g} s, waited at most {self.max_retry_after_s:g} s)"
                logger.warning("judge request got %s (attempt %d)", error, attempt + 1)
                continue
            if resp.status_code != 200:
                return None, f"HTTP {resp.status_code}: {resp.text[:200]}"
            try:
                content = resp.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                return None, f"malformed response body: {resp.text[:200]!r}"
            if not isinstance(content, str):
                return None, "malformed response body: content is not a string"
            return content, None
        return None, f"gave up after {self.max_retries + 1} attempts: {error}"

    def _judge_one(self, item: JudgeItem) -> Verdict:
        prompt = self.template.render(item.query, item.response)
        key = self.cache_key(prompt)
        reply = self.cache.get(key) if self.cache else None
        cached = reply is not None
        if cached:
            self._count("cache_hits")
        else:
            reply, error = self._request(prompt)
            if reply is None:
                self._count("failures")
                return Verdict(error=error)
        verdict = parse_judge_reply(reply)
        if verdict.error is not None:
            self._count("failures")
        elif self.cache is not None and not cached:
            self.cache.put(key, reply)
        return verdict

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        if self.concurrency == 1 or len(items) <= 1:
            return [self._judge_one(it) for it in items]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._judge_one, items))
