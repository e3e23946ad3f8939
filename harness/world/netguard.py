"""The process's network guard: one audit hook and the socket ``connect`` patches.

Owns what refuses traffic that would leave the machine while a shakeout world is active, and
after :func:`seal_network` for good: the audit hook (``sys.addaudithook``, installed once, never
removed), the loopback tests, the refusal messages and errors, the harness's own exempt
operations (:func:`harness_operation`) and the policy applied to each audited event
(:func:`police`). It knows nothing of interceptors: :mod:`harness.world.intercept` hands it the
active interceptor's policing callback with :func:`engage` and takes it back with :func:`disengage`.

May import the standard library only (no harness module, no HTTP library).

While engaged it refuses, from every thread except the harness's own marked operations:

- a ``connect``/``sendto`` to anything but loopback (127.0.0.0/8, ::1, ``localhost``) or a unix
  socket: ``NetworkBlockedError``;
- a name lookup (``getaddrinfo``, ``gethostbyname``) of a name other than ``localhost``: the
  world's hosts are answered at the transport before any lookup, so this is always a call that
  would leave the world (``NetworkBlockedError``);
- a subprocess, exec, ``posix_spawn``, ``os.system`` or fork, unless subprocesses are allowed:
  ``SubprocessBlockedError``.

A host name given to the C-level ``_socket.socket.connect``/``sendto`` is resolved before the
audit event is raised, so that lookup happens before the refusal; :func:`guarded_connects`
builds ``socket.socket.connect``/``connect_ex`` replacements that refuse such names without a
lookup.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import shlex
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "NetworkBlockedError",
    "SubprocessBlockedError",
    "disengage",
    "engage",
    "guarded_connects",
    "harness_operation",
    "install_hook",
    "police",
    "seal_network",
    "where",
]

Police = Callable[[str, tuple[Any, ...]], None]
"""The active interceptor's ``police(event, args)``: returns, or raises a refusal."""


class NetworkBlockedError(ConnectionRefusedError):
    """A socket or name lookup tried to reach beyond loopback while shakeout intercepts the
    process (an ``OSError``, so SDKs and HTTP clients treat it as a connection error)."""


class SubprocessBlockedError(PermissionError):
    """The agent tried to start a process while the scenario does not allow subprocesses."""


_IP_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})
# sockets of these families cannot leave the machine (the harness's own socketpairs are unix)
_LOCAL_FAMILIES = frozenset(
    f for f in (getattr(socket, "AF_UNIX", None), getattr(socket, "AF_NETLINK", None)) if f
)


def _local_host(host: Any) -> bool:
    """Whether ``host`` names this machine: loopback, unspecified (``0.0.0.0`` connects to the
    machine itself) or ``localhost`` (RFC 6761: every name below ``.localhost`` is loopback)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.rstrip(".").lower()
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _ip_literal(host: Any) -> bool:
    """Whether ``host`` is a numeric address (looking it up sends nothing)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_loopback(sock: Any, address: Any) -> bool:
    """Whether ``sock`` reaching ``address`` stays on this machine."""
    family = getattr(sock, "family", None)
    if family in _LOCAL_FAMILIES:
        return True
    if family not in _IP_FAMILIES:
        return False  # raw packets, bluetooth, CAN...: they can leave the machine
    host = address[0] if isinstance(address, tuple) and address else address
    # a host name other than localhost is refused: that also avoids its DNS lookup
    return _local_host(host)


def _blocked_message(address: Any) -> str:
    return (
        f"shakeout blocked a connection to {where(address)}: no request leaves the machine "
        "while a shakeout world is active. Route it in the scenario (tools or model), or send "
        "it through httpx/httpx2 so the world can answer it"
    )


def _sealed_refusal(address: Any) -> NetworkBlockedError:
    return NetworkBlockedError(
        f"shakeout blocked a connection to {where(address)}: an agent call that timed out "
        "earlier in this process may still be running, so no connection leaves the "
        "machine for the rest of the session. Fix the hang (see the run that reported "
        "'no terminal state within N s')"
    )


def where(address: Any) -> str:
    """An address as ``host:port`` (or its repr), for refusals and the record."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{_text(address[0])}:{address[1]}"
    return repr(address)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _command_line(event: str, args: tuple[Any, ...]) -> str:
    """The command an audited process event was about to run, for the record."""
    if event in ("os.fork", "os.forkpty"):
        return event[3:] + "()"
    argv: Any = args[0] if event == "os.system" else args[1] if len(args) > 1 else None
    if argv is None and args:
        argv = args[0]  # Popen without args: the executable
    if isinstance(argv, str | bytes | os.PathLike):
        return _text(os.fsdecode(argv) if isinstance(argv, os.PathLike) else argv)
    try:
        return shlex.join(_text(os.fsdecode(a) if isinstance(a, os.PathLike) else a) for a in argv)
    except TypeError:
        return repr(argv)


# What the audit hook watches. Every other event of the process (imports, open(), compile...)
# returns after one frozenset lookup: the hook costs a Python call per audited event.
_SOCKET_EVENTS = {
    "socket.connect": "connect",
    "socket.sendto": "sendto",
    "socket.sendmsg": "sendto",
}
_LOOKUP_EVENTS = frozenset({"socket.getaddrinfo", "socket.gethostbyname"})
# os.spawn* and pty.spawn go through os.fork + os.exec; subprocess.Popen (fork_exec in C)
# raises only its own event. os.fork is policed as well: a forked copy of the agent is a
# process the run's world does not see into.
_PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.forkpty"}
)
_WATCHED = frozenset(_SOCKET_EVENTS) | _LOOKUP_EVENTS | _PROCESS_EVENTS

# Which threads are policed: every thread of the process while an interceptor is active, not
# only the driver's agent-call threads, because an agent may start threads (or executors) of
# its own, and a thread left over from an earlier run must not slip out either. The harness's
# own operations during a run (hard-kill mode spawning its zygote and children) are exempted
# explicitly, by marking them on their thread with harness_operation(): a mark an agent never
# sets by accident, unlike a policy by socket family or thread name that agent code could match.
_harness = threading.local()
_HOOKED = False
_policer: Police | None = None
_SEALED = False


@contextmanager
def harness_operation() -> Iterator[None]:
    """Exempt this thread from the network guard for the block: the harness's own work during a
    run (starting an agent process, its socketpairs), never the agent's."""
    depth = getattr(_harness, "depth", 0)
    _harness.depth = depth + 1
    try:
        yield
    finally:
        _harness.depth = depth


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _WATCHED:
        return
    policer = _policer
    if policer is None and not _SEALED:
        return
    if getattr(_harness, "depth", 0):
        return
    if policer is not None:
        policer(event, args)
        return
    what = _SOCKET_EVENTS.get(event)
    if what is not None and args[1] is not None and not _is_loopback(args[0], args[1]):
        raise _sealed_refusal(args[1])  # sealed, no run active: refused, nobody to tell


def engage(policer: Police) -> None:
    """Police every audited event with ``policer`` (an interceptor was entered)."""
    global _policer
    _policer = policer


def disengage() -> None:
    """Stop policing (the interceptor was left); a sealed process keeps its seal."""
    global _policer
    _policer = None


def install_hook() -> None:
    """Add the process's one audit hook (it can never be removed; it stays cheap when idle)."""
    global _HOOKED
    if not _HOOKED:
        # The standard library runs `uname -p` the first time anything asks for the processor
        # name, and the openai SDK's platform header does (platform.platform()) on its first
        # request: a process the agent never meant to start. Ask once now, before any world is
        # active, so that the cached answer serves it and no correct agent fails for it.
        platform.uname().processor  # noqa: B018 - a cached property, read for its side effect
        sys.addaudithook(_audit)
        _HOOKED = True


def police(
    event: str, args: tuple[Any, ...], note: Callable[[str, str], None], allow_subprocess: bool
) -> None:
    """Refuse (``note(what, target)``, then raise) an audited attempt to leave the world."""
    """Refuse (record and raise) an audited attempt to leave the world; see the module."""
    what = _SOCKET_EVENTS.get(event)
    if what is not None:
        address = args[1]
        if address is None or _is_loopback(args[0], address):
            return  # sendmsg on a connected socket: its connect was policed
        note(what, where(address))
        if what == "connect":
            raise NetworkBlockedError(_blocked_message(address))
        raise NetworkBlockedError(
            f"shakeout blocked a datagram to {where(address)}: nothing leaves the machine "
            "while a shakeout world is active. Route the call through the scenario's "
            "services"
        )
    if event in _LOOKUP_EVENTS:
        host = args[0]
        if host is None or _local_host(host) or _ip_literal(host):
            return  # loopback, or a numeric address whose connect is policed
        name = _text(host)
        note("getaddrinfo", name)
        raise NetworkBlockedError(
            f"shakeout blocked a DNS lookup of {name!r}: the world answers its own hosts "
            "before any lookup, so this name is outside the world and nothing may reach "
            "it. Route the call through the scenario's services"
        )
    if allow_subprocess:
        return
    command = _command_line(event, args)
    note("subprocess", command)
    raise SubprocessBlockedError(
        f"shakeout blocked a subprocess ({command}): no process may start while a "
        "shakeout world is active, as its traffic would bypass the world. Set "
        "'allow_subprocess: true' in the scenario if the agent must run one"
    )


def guarded_connects(
    note: Callable[[str, str], None],
) -> tuple[Callable[[socket.socket, Any], None], Callable[[socket.socket, Any], int]]:
    """Replacements for ``socket.socket.connect`` and ``connect_ex`` (as found now) that refuse a
    non-loopback address before any name lookup and ``note`` it."""
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if not _is_loopback(sock, address):
            note("connect", where(address))
            raise NetworkBlockedError(_blocked_message(address))
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        if not _is_loopback(sock, address):
            note("connect", where(address))
            raise NetworkBlockedError(_blocked_message(address))
        return connect_ex(sock, address)

    return guarded_connect, guarded_connect_ex


def seal_network() -> None:
    """From now on, refuse every non-loopback connection of this process, for good.

    Called after a run timed out: its hung agent call lives on in a thread Python cannot kill,
    and once the world is gone that thread's requests would reach the real network. The audit
    hook refuses every non-loopback connect and datagram at the C level from then on (no run
    active: refused, not recorded); ``socket.socket.connect``/``connect_ex`` are also patched so
    a host name is refused before its lookup. Idempotent; interceptors entered later keep the
    seal (they restore what they found).
    """
    global _SEALED
    if _SEALED:
        return
    install_hook()
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex

    def sealed_connect(sock: socket.socket, address: Any) -> None:
        if not _is_loopback(sock, address):
            raise _sealed_refusal(address)
        connect(sock, address)

    def sealed_connect_ex(sock: socket.socket, address: Any) -> int:
        if not _is_loopback(sock, address):
            raise _sealed_refusal(address)
        return connect_ex(sock, address)

    socket.socket.connect = sealed_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = sealed_connect_ex  # type: ignore[method-assign, assignment]
    _SEALED = True
