"""The process's SSL contexts: one per HTTP library, built once, shared by every built client."""

from __future__ import annotations

import shutil
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import httpx
import httpx2
import pytest

from reference_agent import build_adapter, tls


@dataclass(frozen=True)
class Endpoints:
    model_base_url: str = "http://model.test/v1"
    tools_base_url: str = "http://tools.test"


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Start from no contexts built and record every CA-bundle load as (cafile, capath)."""
    monkeypatch.setattr(tls, "_contexts", {})
    seen: list[tuple[Any, Any]] = []
    original = ssl.SSLContext.load_verify_locations

    def spy(
        self: ssl.SSLContext, cafile: Any = None, capath: Any = None, cadata: Any = None
    ) -> None:
        seen.append((cafile, capath))
        original(self, cafile, capath, cadata)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", spy)
    return seen


def test_building_many_adapters_loads_the_ca_bundle_once_per_library(
    loads: list[tuple[Any, Any]],
) -> None:
    adapters = [build_adapter(Endpoints()) for _ in range(4)]
    for adapter in adapters:
        adapter.desk._model.prepare("anthropic_messages")  # the Anthropic client too
    # one for httpx (the tools), one for httpx2 (both model SDKs), however many desks
    assert len(loads) == 2
    for adapter in adapters:
        adapter.close()


def test_injected_clients_build_no_context(loads: list[tuple[Any, Any]]) -> None:
    adapter = build_adapter(
        Endpoints(),
        model_http_client=httpx2.Client(
            transport=httpx2.MockTransport(lambda r: httpx2.Response(204))
        ),
        tools_http_client=httpx.Client(
            transport=httpx.MockTransport(lambda r: httpx.Response(204))
        ),
    )
    adapter.desk._model.prepare("anthropic_messages")
    assert loads == []
    assert tls._contexts == {}
    adapter.close()


def test_each_library_has_one_context_of_its_own(loads: list[tuple[Any, Any]]) -> None:
    first, second = tls.httpx_ssl_context(), tls.httpx2_ssl_context()
    assert tls.httpx_ssl_context() is first
    assert tls.httpx2_ssl_context() is second
    assert first is not second
    assert first.verify_mode == second.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname
    assert second.check_hostname
    assert len(loads) == 2


def test_ssl_cert_file_keeps_the_libraries_meaning(
    loads: list[tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A bundle at a path of its own: the libraries' default (certifi's) would not be it.
    bundle = tmp_path / "ca.pem"
    shutil.copyfile(certifi.where(), bundle)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    tls.httpx_ssl_context()
    tls.httpx2_ssl_context()
    assert [str(cafile) for cafile, _ in loads] == [str(bundle), str(bundle)]


def test_threads_racing_for_a_context_build_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "_contexts", {})
    built: list[ssl.SSLContext] = []

    def slow_create() -> ssl.SSLContext:
        time.sleep(0.05)  # long enough for every racer to arrive while the first one builds
        built.append(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        return built[-1]

    monkeypatch.setattr(httpx, "create_ssl_context", slow_create)
    start = threading.Barrier(8)
    got: list[ssl.SSLContext] = []

    def race() -> None:
        start.wait()
        got.append(tls.httpx_ssl_context())

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert len(got) == 8
    assert all(ctx is built[0] for ctx in got)
