"""The optional LLM phrasing adapter against a real local OpenAI-compatible HTTP server (uvicorn in a
thread) that returns crafted completions: a faithful phrasing is used; one that invents a price, a
product, a brand or a claim is refused and the template reply is kept; a slow or broken endpoint
falls back within the hard timeout; without a URL nothing is called."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from tests.search.conftest import tiny_items

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.concierge import Concierge, ConciergeMessage
from shopkeep.concierge.phrasing import LLMPhraser, PhrasingConfig, check_phrasing, grounding_for
from shopkeep.errors import ValidationError
from shopkeep.search import SearchConfig, Searcher
from shopkeep.storage import open_store


class FakeLLM:
    """A chat-completions server; ``answer(facts_json) -> str`` decides what it says."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.answer: Any = lambda facts: "ok"
        self.delay = 0.0
        self.status = 200
        self.requests: list[dict[str, Any]] = []

        @self.app.post("/v1/chat/completions")
        async def complete(request: Request) -> Any:
            body = await request.json()
            self.requests.append(body)
            if self.delay:
                import asyncio

                await asyncio.sleep(self.delay)
            if self.status != 200:
                from fastapi.responses import JSONResponse

                return JSONResponse({"error": "boom"}, status_code=self.status)
            content = self.answer(body["messages"][-1]["content"])
            return {"id": "x", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}]}


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[FakeLLM, str]]:
    fake = FakeLLM()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield fake, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def searcher() -> Searcher:
    return Searcher(SearchConfig(encoder="hashing", cache_dir=None)).fit(CatalogSnapshot.from_items(tiny_items()))


def _bot(searcher: Searcher, url: str, timeout: float = 2.0) -> Concierge:
    return Concierge(open_store("memory://"), lambda: (searcher, None),
                     phraser=LLMPhraser(PhrasingConfig(url, model="fake", timeout_s=timeout)), ask="never")


def _ask(bot: Concierge, cid: str) -> Any:
    return bot.reply(ConciergeMessage(cid, "fragrance-free moisturizer under $30", anonymous_id="a"))


def _faithful(reply: Any) -> str:
    p = reply.products[0]
    return (f"Hi, I'm an automated shopping assistant. For a fragrance-free moisturizer under $30 I found "
            f"{p.title} at ${p.price_minor / 100:.2f}.")


def test_a_faithful_phrasing_is_used(searcher: Searcher, llm: tuple[FakeLLM, str]) -> None:
    fake, url = llm
    template = Concierge(open_store("memory://"), lambda: (searcher, None), ask="never", phraser=None)
    base = _ask(template, "t")
    assert base.products and base.phrased_by == "template"
    fake.answer = lambda facts: _faithful(base)
    got = _ask(_bot(searcher, url), "c1")
    assert got.phrased_by == "llm" and got.reply == _faithful(base), got.phrasing_refused
    assert "fragrance-free" in fake.requests[-1]["messages"][-1]["content"]  # the facts were sent


@pytest.mark.parametrize(("invented", "violation"), [
    ("Hydra Fragrance-Free Moisturizer costs just $12.99 today.", "price 12.99"),
    ("Try the Rose Glow Moisturizer, it is fragrance-free too.", 'product "Rose Glow Moisturizer"'),
    ("Clinique also makes a great fragrance-free moisturizer.", 'brand "Clinique"'),
    ("Hydra Fragrance-Free Moisturizer is dermatologist recommended.", 'claim "dermatologist"'),
    ("Hydra Fragrance-Free Moisturizer ships free: free shipping on all orders.", 'claim "free shipping"'),
    ("Hydra Fragrance-Free Moisturizer by AquaLux is fragrance-free.", 'name "AquaLux"'),
    ("Hydra Fragrance-Free Moisturizer is rated 4.9 by 1200 shoppers.", "number 4.9"),
])
def test_an_invented_fact_is_refused_and_the_template_kept(searcher: Searcher, llm: tuple[FakeLLM, str],
                                                           invented: str, violation: str) -> None:
    fake, url = llm
    fake.answer = lambda facts: "Hi, I'm an automated shopping assistant. " + invented
    bot = _bot(searcher, url)
    got = _ask(bot, "c2")
    template = _ask(Concierge(open_store("memory://"), lambda: (searcher, None), ask="never", phraser=None), "t")
    assert got.phrased_by == "template" and got.reply == template.reply
    assert any(v.startswith(violation) for v in got.phrasing_refused), got.phrasing_refused
    assert bot.phraser is not None and isinstance(bot.phraser, LLMPhraser) and bot.phraser.rejected == 1


def test_missing_disclosure_is_refused(searcher: Searcher, llm: tuple[FakeLLM, str]) -> None:
    fake, url = llm
    fake.answer = lambda facts: "Hydra Fragrance-Free Moisturizer fits what you asked for."
    got = _ask(_bot(searcher, url), "c3")
    assert got.phrased_by == "template" and "automated" in got.reply
    assert "the automated-assistant disclosure is missing" in got.phrasing_refused


def test_slow_or_broken_endpoint_falls_back_within_the_timeout(searcher: Searcher,
                                                               llm: tuple[FakeLLM, str]) -> None:
    fake, url = llm
    fake.answer = lambda facts: "never used"
    fake.delay = 3.0
    try:
        start = time.perf_counter()
        got = _ask(_bot(searcher, url, timeout=0.3), "c4")
        assert time.perf_counter() - start < 2.0
        assert got.phrased_by == "template" and got.phrasing_refused == ("timeout",)
    finally:
        fake.delay = 0.0
    fake.status = 500
    try:
        got = _ask(_bot(searcher, url), "c5")
        assert got.phrased_by == "template" and got.phrasing_refused[0].startswith("endpoint error")
    finally:
        fake.status = 200
    dead = _ask(_bot(searcher, "http://127.0.0.1:9/v1", timeout=0.5), "c6")  # nothing listens on port 9
    assert dead.phrased_by == "template"


def test_off_by_default(searcher: Searcher, monkeypatch: pytest.MonkeyPatch, llm: tuple[FakeLLM, str]) -> None:
    fake, url = llm
    monkeypatch.delenv("SHOPKEEP_CONCIERGE_LLM_URL", raising=False)
    before = len(fake.requests)
    bot = Concierge(open_store("memory://"), lambda: (searcher, None), ask="never")
    assert bot.phraser is None and _ask(bot, "c7").phrased_by == "template"
    assert len(fake.requests) == before
    monkeypatch.setenv("SHOPKEEP_CONCIERGE_LLM_URL", url)
    assert isinstance(Concierge(open_store("memory://"), lambda: (searcher, None)).phraser, LLMPhraser)
    with pytest.raises(ValidationError, match="url"):
        LLMPhraser(PhrasingConfig("ftp://x"))


def test_guard_accepts_numbers_spelled_out_only_when_grounded(searcher: Searcher) -> None:
    snap = searcher.snapshot_
    g = grounding_for("Here are 2 picks under $30.", [], [], list(snap.brands), [it.title for it in snap.items])
    assert check_phrasing("Here are two picks under thirty dollars.", g).ok
    assert not check_phrasing("Here are two picks under forty dollars.", g).ok
