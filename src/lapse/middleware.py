"""Pure ASGI middleware: trusted-proxy headers and response headers every answer carries."""

import functools
from ipaddress import ip_address

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lapse.settings import Network

DEFAULT_HEADER_FIELDS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
DEFAULT_HEADERS = [(k.lower().encode(), v.encode()) for k, v in DEFAULT_HEADER_FIELDS.items()]
# The API's answers are per caller and some carry secrets (a new link's URL, a new key): never stored by a cache.
API_HEADER_FIELDS = DEFAULT_HEADER_FIELDS | {"Cache-Control": "no-store"}
API_HEADERS = [(k.lower().encode(), v.encode()) for k, v in API_HEADER_FIELDS.items()]


def app_path(scope: Scope) -> str:
    """The path below the app's root path (a proxy's X-Forwarded-Prefix, or the server's --root-path)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    return path


class TrustedProxies:
    """Honour X-Forwarded-For/-Proto/-Host/-Prefix only from LAPSE_TRUSTED_PROXIES.

    Uvicorn's own proxy middleware knows For and Proto but not Host or Prefix, which link URLs need behind a
    proxy, and it ties us to one ASGI server; so this one replaces it (uvicorn runs with proxy_headers off).
    """

    def __init__(self, trusted: list[Network]) -> None:
        self.trusted = trusted
        # Per instance: the answer depends on `trusted`. Peers are few; parsing one cost ~5 µs a request.
        self._is_trusted = functools.lru_cache(maxsize=1024)(self._check)

    def _check(self, host: str) -> bool:
        try:
            address = ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def forwarded(self, scope: Scope) -> Scope:
        """The scope as the client sent it to our proxy: a new dict if a trusted proxy forwarded it, else itself."""
        client = scope.get("client")
        if scope["type"] != "http" or not client or not self._is_trusted(client[0]):
            return scope
        headers = dict(scope["headers"])
        scope = dict(scope)
        if proto := headers.get(b"x-forwarded-proto"):
            scheme = proto.decode("latin-1").split(",")[0].strip().lower()
            if scheme in ("http", "https"):
                scope["scheme"] = scheme
        if host := headers.get(b"x-forwarded-host"):
            forwarded = host.split(b",")[0].strip()
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", forwarded)]
        if prefix := headers.get(b"x-forwarded-prefix"):
            scope["root_path"] = "/" + prefix.decode("latin-1").split(",")[0].strip().strip("/")
        if forwarded_for := headers.get(b"x-forwarded-for"):
            # The rightmost address that is not one of our proxies is the client; the rest could be forged.
            hops = [hop.strip() for hop in forwarded_for.decode("latin-1").split(",") if hop.strip()]
            for hop in reversed(hops):
                if not self._is_trusted(hop):
                    scope["client"] = (hop, 0)
                    break
        return scope


class ProxyHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(self.proxies.forwarded(scope), receive, send)


class DefaultHeadersMiddleware:
    """nosniff, no-referrer and no framing on every answer, errors and docs included; no-store on the API's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        defaults = API_HEADERS if app_path(scope).startswith("/api/") else DEFAULT_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in defaults if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
