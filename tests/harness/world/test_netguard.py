"""Tests for harness.world.netguard: the socket patches, the audit hook and the seal, through an
active interceptor (the guard polices only while one is engaged)."""

from __future__ import annotations

import _socket
import os
import socket
import subprocess
import sys
import threading
from typing import Any

import httpx
import httpx2
import pytest
from canary import Canary

from faults.surfaces import (
    HttpResponse,
)
from harness.world.intercept import (
    Interceptor,
    NetworkBlockedError,
    SubprocessBlockedError,
    harness_operation,
)

# Building a client creates an SSL context (20-60 ms); these cheap ones are shared.
HTTPX = httpx.Client(verify=False)
HTTPX2 = httpx2.Client(verify=False)


# --------------------------------------------------------------------------- socket guard


@pytest.mark.parametrize("address", [("10.255.255.1", 9), ("example.com", 80)])
def test_socket_guard_refuses_non_loopback(address: tuple[str, int]) -> None:
    with Interceptor(lambda r: HttpResponse(204)) as interceptor:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            with pytest.raises(NetworkBlockedError) as info:
                sock.connect(address)
            with pytest.raises(NetworkBlockedError):
                sock.connect_ex(address)
        finally:
            sock.close()
    message = str(info.value)
    assert "shakeout blocked a connection to" in message
    assert "no request leaves the machine" in message
    assert interceptor.blocked == (f"{address[0]}:{address[1]}",) * 2


def test_socket_guard_lets_loopback_through(canary: Canary) -> None:
    port = int(canary.url.rsplit(":", 1)[1])
    with Interceptor(lambda r: HttpResponse(204)) as interceptor:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            assert sock.connect_ex(("localhost", port)) == 0
        finally:
            sock.close()
    assert interceptor.blocked == ()


# --------------------------------------------------------------------------- the audit hook


def _c_connect() -> None:
    sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # below the patched class
    try:
        sock.connect(("203.0.113.1", 80))
    finally:
        sock.close()


def _udp_send() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", ("203.0.113.1", 53))


def _fast_open() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, ("203.0.113.1", 80))


def _udp_sendmsg() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.sendmsg([b"x"], [], 0, ("2001:db8::1", 53))


def _lookup() -> None:
    socket.getaddrinfo("example.invalid", 80)


def _gethostbyname() -> None:
    socket.gethostbyname("example.invalid")


def _run_true() -> None:
    subprocess.run(["true"], check=True)


def _system() -> None:
    os.system("true")


def _posix_spawn() -> None:
    os.posix_spawn("/bin/true", ["true", "-x"], os.environ)


def _fork() -> None:
    if os.fork() == 0:  # pragma: no cover - the guard refuses the fork
        os._exit(0)


LEAVING = [
    (_c_connect, NetworkBlockedError, "connect", "203.0.113.1:80"),
    (_udp_send, NetworkBlockedError, "sendto", "203.0.113.1:53"),
    (_fast_open, NetworkBlockedError, "sendto", "203.0.113.1:80"),
    (_udp_sendmsg, NetworkBlockedError, "sendto", "2001:db8::1:53"),
    (_lookup, NetworkBlockedError, "getaddrinfo", "example.invalid"),
    (_gethostbyname, NetworkBlockedError, "getaddrinfo", "example.invalid"),
    (_run_true, SubprocessBlockedError, "subprocess", "true"),
    (_system, SubprocessBlockedError, "subprocess", "true"),
    (_posix_spawn, SubprocessBlockedError, "subprocess", "true -x"),
    (_fork, SubprocessBlockedError, "subprocess", "fork()"),
]


@pytest.mark.parametrize(("attempt", "error", "what", "target"), LEAVING)
def test_the_audit_hook_refuses_and_records_what_patching_misses(
    attempt: Any, error: type[OSError], what: str, target: str
) -> None:
    seen: list[tuple[str, str]] = []
    with (
        Interceptor(lambda r: HttpResponse(204), on_blocked=lambda *b: seen.append(b)) as i,
        pytest.raises(error, match="shakeout blocked"),
    ):
        attempt()
    assert seen == [(what, target)]
    assert i.blocked == (target,)
    assert issubclass(error, OSError)  # SDKs and clients take it for a connection error


def test_the_audit_hook_polices_threads_the_agent_starts() -> None:
    seen: list[tuple[str, str]] = []
    caught: list[BaseException] = []

    def agent_thread() -> None:
        try:
            _lookup()
        except OSError as exc:
            caught.append(exc)  # the agent swallows it: the record still has it

    with Interceptor(lambda r: HttpResponse(204), on_blocked=lambda *b: seen.append(b)):
        thread = threading.Thread(target=agent_thread, name="agents-own-worker")
        thread.start()
        thread.join(timeout=10)
    assert [type(e) for e in caught] == [NetworkBlockedError]
    assert seen == [("getaddrinfo", "example.invalid")]


def test_loopback_unix_sockets_and_localhost_stay_allowed(canary: Canary) -> None:
    port = int(canary.url.rsplit(":", 1)[1])
    with Interceptor(lambda r: HttpResponse(204), on_blocked=lambda *b: pytest.fail(str(b))):
        sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.connect(("127.0.0.1", port))  # C level, loopback
        finally:
            sock.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"x", ("127.0.0.1", 9))
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with mine, theirs:
            socket.send_fds(mine, [b"fd"], [theirs.fileno()])
            assert socket.recv_fds(theirs, 16, 1)[0] == b"fd"
        assert socket.getaddrinfo("localhost", port)
        assert socket.getaddrinfo("127.0.0.1", port)
        assert socket.getaddrinfo("203.0.113.1", 80)  # numeric: no lookup; its connect is policed
        assert socket.gethostbyname("localhost").startswith("127.")


def test_allowed_subprocesses_really_run_and_sockets_stay_guarded() -> None:
    seen: list[tuple[str, str]] = []
    with Interceptor(
        lambda r: HttpResponse(204), on_blocked=lambda *b: seen.append(b), allow_subprocess=True
    ):
        done = subprocess.run(["sh", "-c", "echo ran"], capture_output=True, text=True, check=True)
        assert os.system("true") == 0
        with pytest.raises(NetworkBlockedError):
            _c_connect()
    assert done.stdout == "ran\n"
    assert seen == [("connect", "203.0.113.1:80")]


def test_the_harness_own_operations_are_exempt() -> None:
    seen: list[tuple[str, str]] = []
    with Interceptor(lambda r: HttpResponse(204), on_blocked=lambda *b: seen.append(b)):
        with harness_operation(), harness_operation():
            subprocess.run(["true"], check=True)
        with pytest.raises(SubprocessBlockedError):  # the mark ends with its block
            subprocess.run(["true"], check=True)
    assert seen == [("subprocess", "true")]


def test_outside_an_active_interceptor_nothing_is_blocked() -> None:
    # In a child process, so that a seal set by another test cannot hide a false refusal: after
    # an interceptor came and went, the hook is installed and must let everything through.
    code = (
        "import _socket, os, socket, subprocess\n"
        "from harness.world.intercept import Interceptor, NetworkBlockedError\n"
        "from faults.surfaces import HttpResponse\n"
        "with Interceptor(lambda r: HttpResponse(204)):\n"
        "    pass\n"
        "s = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n"
        "    s.connect(('203.0.113.1', 9))  # UDP: sends nothing\n"
        "except NetworkBlockedError:\n"
        "    raise\n"
        "except OSError:\n"
        "    pass  # no route in this sandbox: the system's answer, not shakeout's\n"
        "assert subprocess.run(['true']).returncode == 0\n"
        "assert os.system('true') == 0\n"
        "socket.getaddrinfo('localhost', 80)\n"
        "print('nothing blocked')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "nothing blocked" in done.stdout


def test_a_sealed_process_refuses_the_network_for_good_but_keeps_loopback() -> None:
    # In a child process: the seal is permanent, and this test process must stay unsealed.
    code = (
        "import socket\n"
        "from harness.world.intercept import NetworkBlockedError, seal_network\n"
        "seal_network(); seal_network()\n"
        "try:\n"
        "    socket.create_connection(('203.0.113.7', 80), timeout=1)\n"
        "except NetworkBlockedError as exc:\n"
        "    print('blocked:', exc)\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)\n"
        "socket.create_connection(srv.getsockname(), timeout=1).close()\n"
        "print('loopback ok')\n"
        "import _socket\n"
        "for act in (lambda s: s.connect(('203.0.113.8', 80)),\n"
        "            lambda s: s.sendto(b'x', ('203.0.113.9', 53))):\n"
        "    try:\n"
        "        act(_socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n"
        "    except NetworkBlockedError as exc:\n"
        "        print('C level:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "blocked: shakeout blocked a connection to 203.0.113.7:80" in done.stdout
    assert "loopback ok" in done.stdout
    assert "C level: shakeout blocked a connection to 203.0.113.8:80" in done.stdout
    assert "C level: shakeout blocked a connection to 203.0.113.9:53" in done.stdout
