"""Who may talk to the page: the Host a request names and, for a POST, the page it comes from.

The page has no login, so a browser must not be turned against it. A web site whose name is made to
resolve to 127.0.0.1 (DNS rebinding) reaches the page under its own name: only the names the page was
started for are answered (HTTP 400). A page elsewhere can make the browser POST here (drive-by CPU):
a POST whose ``Origin`` (or ``Sec-Fetch-Site``) says it comes from another site is refused (HTTP 403).
Clients that are not browsers (curl, scripts) send no ``Origin`` and are served.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from starlette.responses import JSONResponse

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SAME_SITE_FETCHES = ("same-origin", "none")  # Sec-Fetch-Site: the page itself, or a user typing the address


def allowed_host_names(host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The Host names the page answers when it listens on ``host``: that address and this machine's names for it.

    Loopback: 127.0.0.1, localhost and ::1. All addresses (0.0.0.0): those plus this machine's name
    and its addresses. ``extra``: names a proxy in front of the page uses (``--allow-host``).
    """
    names = {host.lower().strip("[]")}
    if host in LOOPBACK_NAMES or host in ANY_ADDRESS:
        names.update(LOOPBACK_NAMES)
    if host in ANY_ADDRESS:
        machine = socket.gethostname()
        names.update({machine.lower(), socket.getfqdn().lower()})
        try:
            names.update(socket.gethostbyname_ex(machine)[2])
        except OSError:  # a machine whose own name does not resolve: its name is still accepted
            pass
    names.update(name.lower().strip("[]") for name in extra)
    names.discard("")
    return frozenset(names)


def host_name(host_header: str) -> str:
    """``'Example.com:8000'`` -> ``'example.com'``, ``'[::1]:8000'`` -> ``'::1'``; '' when it is no host at all."""
    try:
        parsed = urlsplit(f"//{host_header}")
        name = parsed.hostname or ""
        parsed.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        return ""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


class HostAndOriginGuard:
    """ASGI middleware: refuse a request to another Host (400) and a cross-site POST (403), each in one line."""

    def __init__(self, app, allowed: frozenset[str]):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        refusal = self.refusal(scope["method"], headers, scope.get("scheme", "http"))
        if refusal is None:
            return await self.app(scope, receive, send)
        status, message = refusal
        await JSONResponse({"error": message}, status_code=status)(scope, receive, send)

    def refusal(self, method: str, headers: dict[str, str], scheme: str) -> tuple[int, str] | None:
        """(status, one line) when the request must be refused, else None."""
        host_header = headers.get("host", "")
        if host_name(host_header) not in self.allowed:
            return 400, (
                f"Host {host_header[:100]!r} is not an address this page was started for "
                f"({', '.join(sorted(self.allowed))}); open it by one of those, or start it with --allow-host NAME"
            )
        if method in SAFE_METHODS:
            return None
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in SAME_SITE_FETCHES:
            return 403, f"a POST from another site (Sec-Fetch-Site: {fetch_site[:40]}) is refused; use the page itself"
        origin = headers.get("origin")
        # Host and port, not the scheme: behind a TLS proxy the page is https outside and http here.
        if origin is not None and origin_address(origin) != host_header.lower():
            return (
                403,
                f"a POST from {origin[:100]!r} is refused: only the page itself ({scheme}://{host_header}) may post",
            )
        return None


def origin_address(origin: str) -> str:
    """``'http://127.0.0.1:8000'`` -> ``'127.0.0.1:8000'``; ``'null'`` (a sandboxed or file page) -> ``''``."""
    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return ""
