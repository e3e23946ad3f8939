"""Tests for harness.world.services: static, sequence and ledger behaviours, and service routing."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from faults.surfaces import HttpRequest, HttpResponse
from harness.record import Commit
from harness.world.services import (
    Ledger,
    Sequence,
    ServiceDefinitionError,
    Static,
    ToolService,
)

OK = HttpResponse.of_json(201, {"refund_id": "r-1"})


def post(body: object, key: str | None = None) -> HttpRequest:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return HttpRequest("POST", "http://tools.test/refunds", headers, json.dumps(body).encode())


def test_static_answers_the_same_every_time() -> None:
    behaviour = Static(OK)
    assert [behaviour.respond(post({}), "t", 0.0) for _ in range(3)] == [OK] * 3


def test_sequence_answers_in_order_then_repeats_the_last() -> None:
    first, last = HttpResponse(503), HttpResponse(200)
    behaviour = Sequence([first, last])
    got = [behaviour.respond(post({}), "t", 0.0) for _ in range(4)]
    assert got == [first, last, last, last]
    assert behaviour.calls == 4


def test_an_empty_sequence_is_refused() -> None:
    with pytest.raises(ServiceDefinitionError, match="at least one response, got none"):
        Sequence([])


def test_ledger_commits_once_per_key_and_answers_replays_with_the_first_response() -> None:
    ledger = Ledger(OK)
    assert ledger.respond(post({"amount": 5}, "k1"), "refund", 10.0) is OK
    ledger.response = HttpResponse(500)  # a replay must still get what the commit got
    assert ledger.respond(post({"amount": 5}, "k1"), "refund", 11.0) is OK
    assert ledger.respond(post({"amount": 9}, "k1"), "refund", 12.0) is OK
    assert ledger.effects == (Commit("refund", "k1", {"amount": 5}, 2, 0, 0, 10.0),)
    assert ledger.conflicting_replays() == 1
    assert ledger.committed_count("k1") == 1
    assert ledger.replay_count("k1") == 2
    assert ledger.replay_count("other") == 0
    assert ledger.unkeyed == ()


def test_ledger_flags_effects_without_a_key_and_commits_each() -> None:
    ledger = Ledger(OK)
    ledger.respond(post({"amount": 5}), "refund", 1.0)
    ledger.respond(post({"amount": 5}), "refund", 2.0)
    assert len(ledger.effects) == 2
    assert all(e.idempotency_key is None for e in ledger.unkeyed)
    assert len(ledger.unkeyed) == 2


def test_ledger_key_header_is_case_insensitive_and_configurable() -> None:
    ledger = Ledger(OK, key_header="X-Request-Id")
    request = HttpRequest("POST", "http://t/x", {"x-request-id": "abc"}, b"not json")
    ledger.respond(request, "notify", 0.0)
    ledger.respond(request, "notify", 0.0)
    assert ledger.effects == (Commit("notify", "abc", "not json", 1, 0, 0, 0.0),)


def test_ledger_stamps_each_commit_with_its_number_and_its_request() -> None:
    ledger = Ledger(OK)
    numbers = iter([(2, 1), (4, 3)])
    ledger.stamp = lambda: next(numbers)
    ledger.respond(post({"amount": 5}, "k1"), "refund", 1.0)
    ledger.respond(post({"amount": 5}, "k1"), "refund", 2.0)  # a replay: no commit, no number
    ledger.respond(post({"amount": 6}, "k2"), "refund", 3.0)
    assert [(c.seq, c.request_seq) for c in ledger.commits()] == [(2, 1), (4, 3)]


@given(st.lists(st.sampled_from(["a", "b", "c", None]), max_size=25))
def test_effects_are_one_per_key_plus_one_per_unkeyed_request(keys: list[str | None]) -> None:
    ledger = Ledger(OK)
    for i, key in enumerate(keys):
        ledger.respond(post({"n": 1}, key), "refund", float(i))
    keyed = [k for k in keys if k is not None]
    effects = ledger.effects
    assert len(effects) == len(set(keyed)) + keys.count(None)
    assert sum(e.replays for e in effects) == len(keyed) - len(set(keyed))
    assert all(ledger.committed_count(k) == 1 for k in keyed)
    assert [e.t for e in effects] == sorted(e.t for e in effects)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs exactly one of path or path_regex"),
        ({"path": "/a", "path_regex": "/a"}, "needs exactly one of path or path_regex"),
        ({"path_regex": "/orders/("}, "which is not a regular expression"),
    ],
)
def test_service_definition_errors(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ServiceDefinitionError, match=message):
        ToolService("get_order", "GET", Static(OK), **kwargs)


@pytest.mark.parametrize(
    ("service", "url", "method", "matches"),
    [
        (ToolService("o", "get", Static(OK), path="/orders/1"), "/api/orders/1", "GET", True),
        (ToolService("o", "GET", Static(OK), path="orders/1"), "/api/orders/1", "GET", True),
        (ToolService("o", "GET", Static(OK), path="/orders/1"), "/api/orders/1", "POST", False),
        (ToolService("o", "GET", Static(OK), path="/orders/1"), "/orders/1", "GET", False),
        (
            ToolService("o", "GET", Static(OK), path_regex=r"/orders/\d+"),
            "/api/orders/42",
            "GET",
            True,
        ),
        (
            ToolService("o", "GET", Static(OK), path_regex=r"^/orders/\d+$"),
            "/api/orders/4x",
            "GET",
            False,
        ),
        (
            ToolService("o", "GET", Static(OK), path_regex=r"/orders/\d+"),
            "/api/orders/4/x",
            "GET",
            False,
        ),
    ],
)
def test_service_pattern_matches_below_the_base_url(
    service: ToolService, url: str, method: str, matches: bool
) -> None:
    pattern = service.pattern("http://tools.test:8080/api/")
    assert bool(pattern.match(httpx.Request(method, "http://tools.test:8080" + url))) is matches
    assert not pattern.match(httpx.Request(method, "http://other.test:8080" + url))
    assert service.method == "GET"


def test_service_call_passes_its_name_and_time() -> None:
    ledger = Ledger(OK)
    service = ToolService("refund", "POST", ledger, path="/refunds")
    assert service.call(post({"a": 1}, "k"), 5.0) is OK
    assert ledger.effects[0].tool == "refund"
    assert ledger.effects[0].t == 5.0
