"""Hand-written bad input against a real server: malformed JSON, non-UTF-8 bodies, deeply nested and
oversized payloads, wrong content types. Each gets a clear 4xx in the envelope and nothing is stored
(the SQLite store's counts are compared before and after)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from tests.serving.conftest import Service, build_store, event, launch, stop

from shopkeep.events.log import EVENTS_LOG
from shopkeep.storage import open_store


@pytest.fixture(scope="module")
def bad_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server of its own (the tests compare store counts)."""
    folder = tmp_path_factory.mktemp("bad")
    uri, artifacts, snapshot = build_store(folder, n_items=120)
    svc = launch(folder, uri, artifacts, snapshot)
    try:
        yield svc
    finally:
        stop(svc.proc)


def counts(uri: str) -> dict[str, int]:
    """Event log size and document counts, read from the SQLite file."""
    store = open_store(uri)
    try:
        out = {"events": store.log_count(EVENTS_LOG)}
        for collection in ("items", "profiles", "identity", "sessions"):
            out[collection] = store.count(collection)
        return out
    finally:
        store.close()


def post(svc: Service, path: str, content: bytes, content_type: str = "application/json",
         key: str | None = None) -> httpx.Response:
    """POST raw bytes."""
    with svc.client(key or svc.admin) as client:
        return client.post(path, content=content, headers={"Content-Type": content_type})


def assert_envelope(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The answer is ``status`` with the envelope and ``code``."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    err: dict[str, object] = body["error"]
    return err


def good_event(svc: Service) -> dict[str, object]:
    """A valid view event."""
    return event("view", "anon-bad-input", item_id=svc.snapshot.item_ids[0])


BAD_JSON = [
    b'{"events": [',
    b'{"events": [{"event_id": "x",}]}',
    b"{'events': []}",
    b'{"events": [] } trailing',
    b"",
    b"\x00\x01\x02",
    b'{"events": [NaN]}',
]


@pytest.mark.parametrize("body", BAD_JSON, ids=[f"case{i}" for i in range(len(BAD_JSON))])
def test_malformed_json_is_a_400_naming_the_body(bad_service: Service, body: bytes) -> None:
    """Malformed JSON: 400 bad_request (or 422 when it parses but is not an object of events)."""
    before = counts(bad_service.store_uri)
    r = post(bad_service, "/v1/events", body)
    assert r.status_code in (400, 422), (r.status_code, r.text)
    assert_envelope(r, r.status_code, "bad_request" if r.status_code == 400 else "invalid_input")
    assert counts(bad_service.store_uri) == before


def test_non_utf8_body_is_refused_and_nothing_stored(bad_service: Service) -> None:
    """Latin-1 bytes and stray invalid UTF-8 are not JSON text: refused in the envelope, nothing stored."""
    before = counts(bad_service.store_uri)
    text = json.dumps({"events": [{**good_event(bad_service), "anonymous_id": "caf\u00e9-\u00e9t\u00e9"}]},
                      ensure_ascii=False)
    for encoded in (text.encode("latin-1"), b'{"events": [{"event_id": "\xff\xfe", "type": "view"}]}',
                    text.encode("utf-8")[:-5] + b"\xc3"):
        r = post(bad_service, "/v1/events", encoded)
        assert r.status_code in (400, 422), (r.status_code, r.text)
        assert_envelope(r, r.status_code, "bad_request" if r.status_code == 400 else "invalid_input")
    assert counts(bad_service.store_uri) == before


def test_utf16_with_bom_is_decoded_exactly_or_refused(bad_service: Service) -> None:
    """JSON in UTF-16 (BOM-detected, RFC 8259 8.1 allows refusing it) is either refused or stored unchanged."""
    anon = "caf\u00e9-utf16"
    ev = {**good_event(bad_service), "anonymous_id": anon}
    before = counts(bad_service.store_uri)
    r = post(bad_service, "/v1/events", json.dumps({"events": [ev]}, ensure_ascii=False).encode("utf-16"))
    if r.status_code != 200:
        assert_envelope(r, r.status_code, r.json()["error"]["code"])
        assert counts(bad_service.store_uri) == before
        return
    assert r.json()["accepted"] == 1
    store = open_store(bad_service.store_uri)
    try:
        last = store.read(EVENTS_LOG, after_seq=0, k=1_000_000)[-1]
    finally:
        store.close()
    assert last.key == ev["event_id"] and json.loads(last.payload)["anonymous_id"] == anon


def test_deeply_nested_payload_is_refused(bad_service: Service) -> None:
    """10 000 levels of nesting inside an event: a clear 4xx, the server stays up, nothing stored."""
    before = counts(bad_service.store_uri)
    depth = 10_000
    nested = b"[" * depth + b"]" * depth
    body = b'{"events": [{"event_id": "deep", "type": "view", "anonymous_id": "a", "props": ' + nested + b"}]}"
    r = post(bad_service, "/v1/events", body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert_envelope(r, r.status_code, r.json()["error"]["code"])
    # the same nesting in an item and a policy
    for path in ("/v1/items/deep-item", "/v1/policies"):
        with bad_service.client(bad_service.admin) as client:
            r = client.put(path, content=b'{"x": ' + nested + b"}", headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:300])
        assert_envelope(r, r.status_code, r.json()["error"]["code"])
    assert counts(bad_service.store_uri) == before
    with bad_service.client() as client:
        assert client.get("/healthz").status_code == 200


def test_moderately_nested_event_fields_name_the_field(bad_service: Service) -> None:
    """An event whose id is an object is rejected per event with the field named; the good one is stored."""
    before = counts(bad_service.store_uri)
    good = good_event(bad_service)
    bad = {**good_event(bad_service), "event_id": {"a": {"b": [1, 2, {"c": None}]}}}
    with bad_service.client(bad_service.ingest) as client:
        r = client.post("/v1/events", json={"events": [bad, good]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (1, 1), body
    assert body["errors"][0]["index"] == 0 and body["errors"][0]["field"] == "event_id", body
    after = counts(bad_service.store_uri)
    assert after["events"] == before["events"] + 1


def test_oversized_payloads_are_413_and_nothing_stored(bad_service: Service) -> None:
    """Over 1 MB: 413 payload_too_large, declared (Content-Length) or streamed (chunked)."""
    before = counts(bad_service.store_uri)
    big = {**good_event(bad_service), "props": {"blob": "x" * 1_200_000}}
    with bad_service.client(bad_service.ingest) as client:
        r = client.post("/v1/events", json={"events": [big]})
        err = assert_envelope(r, 413, "payload_too_large")
        assert "bytes" in str(err["message"])

        def chunks() -> Iterator[bytes]:
            yield b'{"events": [{"event_id": "chunked", "type": "view", "anonymous_id": "a", "props": "'
            for _ in range(40):
                yield b"y" * 50_000
            yield b'"}]}'

        r = client.post("/v1/events", content=chunks(), headers={"Content-Type": "application/json"})
        assert_envelope(r, 413, "payload_too_large")
    # too many events in one batch (each small): a 422 naming the field
    many = [good_event(bad_service) for _ in range(5001)]
    for e in many:
        e.pop("timestamp")
    with bad_service.client(bad_service.ingest) as client:
        r = client.post("/v1/events", json={"events": many})
    assert r.status_code in (413, 422), r.status_code
    assert_envelope(r, r.status_code, "payload_too_large" if r.status_code == 413 else "invalid_input")
    assert counts(bad_service.store_uri) == before


def test_wrong_shapes_and_content_types(bad_service: Service) -> None:
    """A list instead of an object, an unknown top-level field, form data: 4xx in the envelope, nothing stored."""
    before = counts(bad_service.store_uri)
    cases = ((b"[]", "application/json"), (b'{"events": [], "extra": 1}', "application/json"),
             (b'{"events": {"a": 1}}', "application/json"), (b"events=1", "application/x-www-form-urlencoded"),
             (b'{"events": []}', "text/plain"))
    for body, ctype in cases:
        r = post(bad_service, "/v1/events", body, ctype)
        if r.status_code == 200:  # an empty batch is fine whatever the declared type
            assert r.json()["accepted"] == 0
            continue
        assert 400 <= r.status_code < 500, (body, ctype, r.status_code, r.text)
        assert_envelope(r, r.status_code, r.json()["error"]["code"])
    assert counts(bad_service.store_uri) == before


def test_error_envelope_survives_integers_beyond_64_bits() -> None:
    """A rejected body echoing a huge integer still answers in the envelope (regression: 500 from orjson)."""
    import json as _json

    from shopkeep.serving.errors import error_response

    r = error_response(422, "invalid_input", "ids.1: bad", {"errors": [{"value": 411397687340535581245440}]})
    body = _json.loads(bytes(r.body))
    assert r.status_code == 422 and body["error"]["details"]["errors"][0]["value"] == 411397687340535581245440
