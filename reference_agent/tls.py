"""One SSL context per process per HTTP library, built on first need and then shared.

Building a context loads the CA bundle (tens of milliseconds); a process that builds clients
again and again (a restarted desk, a second desk) must not pay it each time. Every client the
desk builds itself gets the context of its library: ``httpx`` for the tools, ``httpx2`` for the
model SDKs. Each context is built the way its library builds its default one
(``create_ssl_context()``), so ``SSL_CERT_FILE``/``SSL_CERT_DIR`` keep their meaning; they are
read once, when the context is built. Infrastructure: imports nothing from the package.
"""

from __future__ import annotations

import ssl
import threading

import httpx
import httpx2

__all__ = ["httpx2_ssl_context", "httpx_ssl_context"]

_lock = threading.Lock()
_contexts: dict[str, ssl.SSLContext] = {}


def httpx_ssl_context() -> ssl.SSLContext:
    """The process's SSL context for ``httpx`` clients (``httpx.create_ssl_context()``)."""
    return _context("httpx")


def httpx2_ssl_context() -> ssl.SSLContext:
    """The process's SSL context for ``httpx2`` clients (``httpx2.create_ssl_context()``)."""
    return _context("httpx2")


def _context(library: str) -> ssl.SSLContext:
    ctx = _contexts.get(library)
    if ctx is not None:
        return ctx
    with _lock:
        ctx = _contexts.get(library)
        if ctx is None:
            # The library's own default: the context a client with verify=True would build.
            create = httpx.create_ssl_context if library == "httpx" else httpx2.create_ssl_context
            ctx = _contexts[library] = create()
        return ctx
