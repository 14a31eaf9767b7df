"""One POST to a webhook receiver, refusing addresses inside our network.

The guard against server-side request forgery works at send time: the host
is resolved once, every address is checked (private, loopback, link-local,
multicast, reserved, unspecified; IPv4, IPv6 and IPv4 inside IPv6), and the
connection goes to the address that passed, with the name in the Host header
and in TLS (SNI and the certificate check). No second look-up happens, so a
name that resolves to a public address when checked and to 127.0.0.1 a moment
later (DNS rebinding) cannot slip through. Redirects are not followed: a 3xx
is an answer like any other, and the caller counts it as a failure.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3.exceptions import HTTPError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The part of a response body kept for the delivery log.
EXCERPT_BYTES = 4096


class Refused(Exception):
    """The URL names a place we do not send to; nothing was sent."""


class SendFailed(Exception):
    """No answer: the name did not resolve, the connection failed, timed out."""


@dataclass(frozen=True)
class Answer:
    status: int
    excerpt: str
    location: str


def address_refusal(ip: IPAddress) -> str:
    """Why we do not connect to this address; empty when we do."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo or (None, None))[1]
        if embedded is not None:
            inner = address_refusal(embedded)
            if inner:
                return f"{ip} carries {embedded}: {inner}"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    )
    for name, hit in checks:
        if hit:
            article = "an" if name[0] in "aeiou" else "a"
            return f"{ip} is {article} {name} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return ""


def resolve(host: str, port: int, *, allow_private: bool) -> IPAddress:
    """The first address of `host` we may connect to; Refused if none."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise SendFailed(f"The name {host} did not resolve: {exc}") from exc
        found = []
        for info in infos:
            # A scope (fe80::1%eth0) is dropped: such an address is refused.
            address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
            if address not in found:
                found.append(address)
    if allow_private and found:
        return found[0]
    reasons = []
    for address in found:
        reason = address_refusal(address)
        if not reason:
            return address
        reasons.append(reason)
    raise Refused(
        f"Not sent: {host} resolves to no public address ({'; '.join(reasons)}). "
        "Webhooks go only to public addresses."
    )


# Connection pools per (scheme, address, port, name): kept-alive connections
# are reused by the next message to the same receiver.
_pools: OrderedDict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = (
    OrderedDict()
)
_pools_lock = threading.Lock()
_POOLS_MAX = 256


def _pool(
    scheme: str, ip: IPAddress, port: int, host: str
) -> urllib3.HTTPConnectionPool:
    key = (scheme, str(ip), port, host)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None:
            _pools.move_to_end(key)
            return pool
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                str(ip),
                port,
                maxsize=8,
                # The certificate is checked against the name, not the address.
                server_hostname=host,
                assert_hostname=host,
                cert_reqs="CERT_REQUIRED",
            )
        else:
            pool = urllib3.HTTPConnectionPool(str(ip), port, maxsize=8)
        _pools[key] = pool
        while len(_pools) > _POOLS_MAX:
            _, old = _pools.popitem(last=False)
            old.close()
        return pool


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    connect_timeout: float,
    read_timeout: float,
    allow_private: bool,
) -> Answer:
    """POST `body` to `url` once. Refused or SendFailed, or the answer."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        raise Refused(f"Not sent: {url!r} is not an http or https URL.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise Refused(f"Not sent: the port in {url!r} is not valid.") from exc
    ip = resolve(host, port, allow_private=allow_private)
    default_port = port == (443 if scheme == "https" else 80)
    name = f"[{host}]" if ":" in host else host
    headers = {**headers, "Host": name if default_port else f"{name}:{port}"}
    if parts.username is not None:
        headers.update(
            urllib3.util.make_headers(
                basic_auth=f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            )
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pool = _pool(scheme, ip, port, host)
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers=headers,
            redirect=False,
            retries=False,
            assert_same_host=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            preload_content=False,
        )
        complete = False
        try:
            data = response.read(EXCERPT_BYTES, decode_content=True)
            complete = len(data) < EXCERPT_BYTES
        finally:
            if not complete:
                # More than the log keeps, or broken: drop the connection
                # rather than read on.
                response.close()
            response.release_conn()
    except (HTTPError, OSError) as exc:
        raise SendFailed(_describe(exc, connect_timeout, read_timeout)) from exc
    return Answer(
        status=response.status,
        excerpt=data.decode("utf-8", "replace"),
        location=response.headers.get("Location", ""),
    )


def _describe(exc: Exception, connect_timeout: float, read_timeout: float) -> str:
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return f"No connection within {connect_timeout:g} s."
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return f"No answer within {read_timeout:g} s."
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return f"Could not connect: {exc}"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS failed: {exc}"
    return f"{type(exc).__name__}: {exc}"
