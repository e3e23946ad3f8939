"""Tests of redaction: query parameters, JSON fields, headers, known values and token shapes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.redact import (
    DEFAULT_FIELDS,
    DEFAULT_QUERY_PARAMS,
    MASK,
    RedactionConfigError,
    Redactor,
    read_settings,
    redact_model,
    redactor_for,
)
from harness.report.model import Report

REPO = Path(__file__).resolve().parents[2]

# Secrets as an agent would carry them: long enough to be hunted everywhere, URL-safe or not.
SECRETS = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N"), include_characters="-_.~+/="),
    min_size=10,
    max_size=40,
).filter(lambda s: s.strip() == s and not s.startswith(MASK))
QUERY_NAMES = st.sampled_from(sorted(DEFAULT_QUERY_PARAMS))
FIELD_NAMES = st.sampled_from(sorted(DEFAULT_FIELDS))


def case_variants(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.replace("_", "-"), name.title()])


@settings(max_examples=150, deadline=None)
@given(secret=SECRETS, name=QUERY_NAMES.flatmap(case_variants), echo=st.booleans())
def test_a_secret_in_a_query_parameter_appears_nowhere(secret: str, name: str, echo: bool) -> None:
    r = Redactor()
    url = f"https://api.example.com/v1/orders?limit=5&{name}={quote(secret, safe='')}&x=1"
    item = {
        "requests": [{"url": url, "method": "GET"}],
        "reason": f"the agent ended after {url}" + (f" (echo: {secret})" if echo else ""),
    }
    text, changed = r.json_text(json.dumps(item, sort_keys=True))
    assert changed
    assert secret not in text
    assert quote(secret, safe="") not in text
    assert f"{name}={MASK}" in text
    assert "limit=5" in text
    assert "x=1" in text


@settings(max_examples=150, deadline=None)
@given(secret=SECRETS, name=FIELD_NAMES.flatmap(case_variants), depth=st.integers(0, 4))
def test_a_secret_in_a_json_field_at_any_depth_appears_nowhere(
    secret: str, name: str, depth: int
) -> None:
    r = Redactor()
    body: Any = {name: secret, "max_tokens": 5}
    for i in range(depth):
        body = {"level": i, "nested": [body]}
    item = {"body": body, "body_text": json.dumps(body), "note": f"later {secret}"}
    masked = r.value(item)
    dumped = json.dumps(masked)
    assert secret not in dumped
    assert json.dumps(secret) not in dumped
    assert "max_tokens" in dumped  # a field that only contains a name is no secret


@settings(max_examples=100, deadline=None)
@given(
    secret=SECRETS,
    header=st.sampled_from(["Authorization", "X-Api-Key", "Cookie", "Proxy-Authorization"]),
)
def test_a_secret_header_in_text_or_a_mapping_appears_nowhere(secret: str, header: str) -> None:
    r = Redactor()
    value = f"Bearer {secret}" if "auth" in header.lower() else secret
    assert secret not in r.text(f"GET /x\n{header}: {value}\nAccept: */*")
    assert secret not in json.dumps(r.value({"headers": {header: value}}))
    # remembered from the mapping, so a bare echo is masked too
    assert r.text(f"echoed {secret}.") == f"echoed {MASK}."


def test_names_that_only_look_like_secrets_are_kept() -> None:
    r = Redactor()
    item = {
        "faults_fired": [{"key": "tool_http_503", "call_index": 1}],
        "effects": [{"idempotency_key": "k-1", "tool": "issue_refund"}],
        "reproduce": "python -m pytest 'a.yaml::x' --chaos-seed=11",
        "reason": "status code=500 after the key rotated; max_tokens: 50",
    }
    text = json.dumps(item, sort_keys=True)
    assert r.json_text(text) == (text, False)


def test_token_shapes_are_masked_whatever_names_them() -> None:
    r = Redactor()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36"
    text = (
        "keys sk-proj-abcdefghijklmnop1234 and sk-ant-api03-abcdefghijklmnop, "
        "ghp_abcdefghijklmnopqrstuvwxyz0123, AKIAABCDEFGHIJKLMNOP, "
        f"{jwt} and 'Bearer abcdefgh12345678'"
    )
    masked = r.text(text)
    for secret in ("abcdefghijklmnop1234", "ghp_", "AKIAABCD", jwt, "abcdefgh12345678"):
        assert secret not in masked
    assert "Bearer [redacted]" in masked


def test_form_bodies_and_quoted_fields_in_text() -> None:
    r = Redactor()
    assert r.text("password=hunter2hunter&user=ann") == f"password={MASK}&user=ann"
    assert r.text("{'token': 'abc'}") == f"{{'token': '{MASK}'}}"
    assert r.text('"client_secret": "s3cr3t-value"') == f'"client_secret": "{MASK}"'


def test_masking_is_idempotent() -> None:
    r = Redactor()
    once = r.text('GET https://h/x?api_key=SECRETVALUE1 {"password": "pw-123456789"}')
    assert r.text(once) == once
    assert r.json_text(json.dumps({"u": once}))[0] == json.dumps({"u": once})


def test_short_values_are_masked_where_named_but_not_hunted_elsewhere() -> None:
    r = Redactor()
    assert r.text("?code=1234&state=x 1234") == f"?code={MASK}&state=x 1234"
    assert r.known == frozenset()


def test_json_fields_with_non_string_values() -> None:
    r = Redactor()
    masked = r.value({"password": 12345678, "token": None, "secret": True, "api_key": {"a": 1}})
    assert masked == {"password": MASK, "token": None, "secret": True, "api_key": MASK}


def test_bodies_keep_their_bytes_unless_a_secret_was_masked() -> None:
    r = Redactor()
    plain = b'{"a":  1, "messages": []}'
    assert r.body(plain) is plain
    masked = r.body(b'{"password": "pw-123456789", "a": 1}')
    assert masked == b'{"password":"[redacted]","a":1}'
    assert r.body("user=a&password=pw-123456789") == f"user=a&password={MASK}"
    assert r.body(b"\xff\xfe pw-123456789") == b"\xff\xfe " + MASK.encode()


def test_extra_names_extend_the_lists() -> None:
    r = Redactor(query=["X-Session"], fields=["pin_code"])
    assert r.text("https://h/?x_session=abcdefgh1") == f"https://h/?x_session={MASK}"
    assert r.value({"Pin-Code": "12345678"}) == {"Pin-Code": MASK}


def test_environment_values_named_like_credentials_are_learned() -> None:
    r = Redactor()
    r.learn_environment({"OPENAI_API_KEY": "not-a-real-key-42", "HOME": "/root", "X_TOKEN": "1"})
    assert r.text("key not-a-real-key-42 used from /root") == f"key {MASK} used from /root"


def test_settings_come_from_tool_shakeout(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.shakeout]\nredact_query = ["sess"]\nredact_fields = ["pin"]\n')
    assert read_settings(pyproject) == (["sess"], ["pin"])
    r = redactor_for(pyproject, environ={})
    assert r.text("https://h/?sess=abcdefghij") == f"https://h/?sess={MASK}"
    assert read_settings(tmp_path / "missing.toml") == ([], [])
    pyproject.write_text('[tool.shakeout]\nredact_fields = "pin"\n')
    with pytest.raises(RedactionConfigError, match=r"redact_fields must be a list of names"):
        read_settings(pyproject)


def test_a_model_is_masked_through_its_json() -> None:
    report = Report.build(
        [
            {
                "nodeid": "a.yaml::a",
                "scenario": "a",
                "verdict": "fail",
                "error": "GET https://h/?api_key=SECRETVALUE1 refused",
            }
        ],
        seed=1,
    )
    masked = redact_model(report, Redactor())
    assert "SECRETVALUE1" not in masked.model_dump_json()
    assert redact_model(masked, Redactor()) is masked


# --------------------------------------------------------------------------- a whole session

LEAKY_AGENT = '''
import json
from dataclasses import dataclass

import httpx

API_KEY = "SECRETVALUE"
PASSWORD = "PASSWORD-9876543"


@dataclass(frozen=True)
class Outcome:
    run_id: str
    state: str
    category: str | None = None
    error: str | None = None
    pending_approval: None = None
    approvals: tuple = ()


class Leaky:
    """Sends its key in a query string and a password in a JSON body, then echoes both."""

    def __init__(self, endpoints):
        self.base = endpoints.tools_base_url

    def begin(self, world):
        pass

    def start(self, payload):
        with httpx.Client(timeout=5.0) as client:
            order = client.get(f"{self.base}/orders/O-1", params={"api_key": API_KEY})
            body = {"user": "ann", "password": PASSWORD}
            client.post(f"{self.base}/login", json=body)
        error = f"login refused for {json.dumps(body)} after {order.request.url}"
        return Outcome("r1", "failed", "tool", error)

    def resume(self, run_id, decision=None):
        return self.start({})

    def trace(self, run_id):
        return None


def build_adapter(endpoints):
    return Leaky(endpoints)
'''

LEAKY_SCENARIO = {
    "name": "leaky",
    "description": "An agent that leaks its credentials into every output it can.",
    "agent": "leaky_agent:build_adapter",
    "input": {"ticket_id": "T-1"},
    "tools": {
        "services": {
            "get_order": {"path": "/orders/O-1", "respond": {"json": {"order_id": "O-1"}}},
            "login": {"method": "POST", "path": "/login", "respond": {"json": {"ok": False}}},
        }
    },
    "expect": {"state": "completed"},
}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_no_output_of_a_session_holds_the_secrets(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    import yaml

    monkeypatch.setenv("PYTHONPATH", f"{pytester.path}{os.pathsep}{REPO}")
    summary = pytester.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makeini("[pytest]\nchaos_seed = 5\n")
    pytester.makepyfile(leaky_agent=LEAKY_AGENT)
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "leaky.yaml").write_text(yaml.safe_dump(LEAKY_SCENARIO))
    out = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        *workers,
        f"--chaos-report={out / 'r.json'}",
        f"--chaos-markdown={out / 'r.md'}",
        f"--chaos-html={out / 'r.html'}",
        f"--junitxml={out / 'junit.xml'}",
        "-p",
        "no:cacheprovider",
        "-rA",
    )
    result.assert_outcomes(failed=1)
    terminal = result.stdout.str() + result.stderr.str()
    assert "FAIL: scenario 'leaky'" in terminal, "the failure text is shown, masked"
    report = json.loads((out / "r.json").read_text())
    (item,) = report["items"]
    assert item["verdict"] == "fail"
    assert any(f"api_key={MASK}" in r["url"] for r in item["requests"])
    outputs = {
        "terminal": terminal,
        "JSON": (out / "r.json").read_text(),
        "Markdown": (out / "r.md").read_text(),
        "step summary": summary.read_text(),
        "HTML": (out / "r.html").read_text(),
        "JUnit XML": (out / "junit.xml").read_text(),
    }
    for secret in ("SECRETVALUE", "PASSWORD-9876543"):
        leaks = {name: text.count(secret) for name, text in outputs.items() if secret in text}
        assert leaks == {}, f"{secret} leaked into {leaks}"
    assert "[redacted]" in outputs["JUnit XML"]


@given(
    secret=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=8, max_size=24
    ).filter(lambda v: v == v.strip().strip("\"'")),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
@settings(max_examples=80, deadline=None)
def test_holds_known_finds_a_remembered_value_as_is_and_inside_json(
    secret: str, before: str, after: str
) -> None:
    redactor = Redactor(secrets=[secret])
    assert redactor.holds_known(before + secret + after)
    assert redactor.holds_known(json.dumps({"note": before + secret + after}))
    assert not Redactor().holds_known(before + secret + after)


def walked_json_text(redactor: Redactor, text: str) -> tuple[str, bool]:
    """``json_text`` as it was before its shortcut: the whole document parsed and walked."""
    if not redactor.suspects(text):
        return text, False
    try:
        parsed = json.loads(text)
    except ValueError:
        masked = redactor.text(text)
        return masked, masked != text
    masked_value = redactor.value(parsed)
    if masked_value == parsed:
        return text, False
    return json.dumps(masked_value, sort_keys=True), True


# What a report entry or a body holds: words that only look like secrets, secrets of every
# shape, characters JSON escapes, and non-ASCII ones whose lower case is ASCII (Kelvin sign).
PIECES = st.sampled_from(
    [
        "no answer was cut at the token limit",
        "max_tokens",
        "Bearer abcdefghijklmnop",
        "sk-" + "a1" * 12,
        "api_key=zzzzzzzzzzzz",
        "password: hunter2hunter2",
        "\u212aey=abcdefghijkl",
        'a "quoted" token',
        'back\\slash \\" token',
        "line\nbreak",
        "null",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "authorization: Basic dXNlcjpwYXNzd29yZA==",
        "AKIAABCDEFGHIJKLMNOP",
        "remembered-secret-value",
        'remembered"quote-value',
        "plain words",
    ]
)
STRINGS = st.lists(PIECES | st.text(max_size=10), max_size=3).map(" ".join)
KEYS = st.sampled_from(
    ["note", "max_tokens", "Api-Key", "PASSWORD", "access-token", "client_secret", "token"]
) | st.text(max_size=8)
DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
KNOWN = st.lists(st.sampled_from(["remembered-secret-value", 'remembered"quote-value']))


@settings(max_examples=400, deadline=None)
# A non-ASCII character whose lower case is ASCII (the Kelvin sign), escaped as \u212a in the
# text; a key named like a secret field; a remembered value with a character JSON escapes.
@example(["\u212aey=abcdefghijkl", "cut at the token limit"], True, False, [], False)
@example({"Api-Key": "zzzzzzzzzzzz", "note": "max_tokens"}, True, True, [], False)
@example(
    ['x remembered"quote-value', "the token limit"], True, True, ['remembered"quote-value'], False
)
@given(
    document=DOCUMENTS,
    ascii_only=st.booleans(),
    sort_keys=st.booleans(),
    known=KNOWN,
    not_json=st.booleans(),
)
def test_json_text_masks_exactly_what_a_walk_of_the_whole_document_masks(
    document: Any, ascii_only: bool, sort_keys: bool, known: list[str], not_json: bool
) -> None:
    text = json.dumps(document, ensure_ascii=ascii_only, sort_keys=sort_keys)
    if not_json:
        text = text[1:]  # no longer a JSON document (or another one): masked as text
    assert Redactor(secrets=known).json_text(text) == walked_json_text(
        Redactor(secrets=known), text
    )


def test_a_configured_field_written_with_mixed_separators_is_masked_as_by_the_full_walk() -> None:
    # "my-pass_phrase" holds neither "my_pass_phrase" nor "my-pass-phrase": no hint shows the
    # key in the text, so json_text must not settle the document from its hints alone.
    document = json.dumps({"my-pass_phrase": "s3cr3t-phrase-value", "note": "the token limit"})
    masked, changed = Redactor(fields=["my_pass_phrase"]).json_text(document)
    assert (masked, changed) == walked_json_text(Redactor(fields=["my_pass_phrase"]), document)
    assert changed
    assert "s3cr3t-phrase-value" not in masked
