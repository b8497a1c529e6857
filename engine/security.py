"""What every request must pass before the API reads it: its Host, its origin, the token.

- **Host**: only names of this engine (the bound address; the loopback names when bound to
  loopback or to every interface; the machine's name when bound to every interface; anything
  in the ``allowed_hosts`` setting). A DNS-rebinding page reaches the engine under its own
  name, so it is refused.
- **Cross-site**: a request a browser sends for another site (``Origin`` not this engine's own,
  or ``Sec-Fetch-Site`` other than ``same-origin``/``none``) is refused, bodiless POSTs too.
  Programs (the app's client, curl) send neither header.
- **Token**: with a token set, every path needs ``Authorization: Bearer <token>``, ``/docs``
  and ``/openapi.json`` included, and is refused (401) before any body is read.

A pure ASGI middleware, so streamed answers (steering) pass through untouched.
"""

from __future__ import annotations

import re
import secrets
import socket

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.errors import envelope
from engine.settings import LOOPBACK_HOSTS, EngineSettings

WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
SAFE_FETCH_SITES = {"same-origin", "none"}
# a Host header as HTTP defines it: a name or an address (IPv6 in brackets), then a port
HOST_HEADER = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(:[0-9]{1,5})?$", re.IGNORECASE)


def split_host(value: str) -> tuple[str, str]:
    """(host, port) of a Host header or an origin's authority; IPv6 in brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = value.partition(":") if value.count(":") == 1 else (value, "", "")
    return host.rstrip("."), port


def allowed_hosts(settings: EngineSettings) -> set[str]:
    bound = settings.host.strip("[]").lower()
    hosts = {bound} | {h.strip("[]").lower() for h in settings.allowed_hosts}
    if bound in LOOPBACK_HOSTS or bound in WILDCARD_HOSTS:
        hosts |= LOOPBACK_HOSTS
    if bound in WILDCARD_HOSTS:
        hosts |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return hosts - WILDCARD_HOSTS


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: EngineSettings):
        self.app = app
        self.settings = settings
        self.hosts = allowed_hosts(settings)
        self.any_host = "*" in settings.allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            problem = self.check(Headers(scope=scope))
            if problem is not None:
                status, code, message = problem
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": code})
                    return
                answer = JSONResponse(envelope(code, message), status_code=status)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def check(self, headers: Headers) -> tuple[int, str, str] | None:
        host_header = headers.get("host", "")
        host, _ = split_host(host_header)
        well_formed = HOST_HEADER.match(host_header.strip()) is not None
        if not self.any_host and (host not in self.hosts or not well_formed):
            return 403, "host_not_allowed", (
                f"This engine does not answer to the host name {host!r}. If you reach it under "
                "that name on purpose, add it to the allowed_hosts setting (--allowed-host, or "
                "INTERPSCOPE_ALLOWED_HOSTS)."
            )  # fmt: skip
        origin = headers.get("origin")
        site = headers.get("sec-fetch-site")
        if (origin is not None and not _same_origin(origin, host_header)) or (
            site is not None and site.lower() not in SAFE_FETCH_SITES
        ):
            return 403, "cross_site", (
                "Cross-site requests are refused: a web page from another site may not use "
                "this engine."
            )  # fmt: skip
        token = self.settings.token
        if token:
            auth = headers.get("authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(
                given.strip().encode(), token.encode()
            ):
                return 401, "unauthorized", (
                    "This engine needs a token: send 'Authorization: Bearer <token>'."
                )  # fmt: skip
        return None


def _same_origin(origin: str, host_header: str) -> bool:
    scheme, sep, authority = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https"):
        return False  # "null" (sandboxed frames, file: pages) and anything odd
    default = "443" if scheme == "https" else "80"
    (o_host, o_port), (h_host, h_port) = split_host(authority), split_host(host_header)
    return o_host == h_host and (o_port or default) == (h_port or default)
