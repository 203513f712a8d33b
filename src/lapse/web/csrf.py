"""Cross-site request forgery: every state-changing request of the web page must prove it came from our own page.

Two checks, both required. The form (or an XHR's `X-CSRF-Token` header) carries a token derived from the session
id with a key only the server holds, so another site cannot know it; and a browser's `Origin` (or
`Sec-Fetch-Site`), when present, must name this site. SameSite=Strict on the session cookie is a third layer.
"""

from urllib.parse import parse_qsl

from pydantic import AnyHttpUrl
from starlette.requests import Request

from lapse.errors import Forbidden, InvalidInput, TooLarge, UnsupportedMedia
from lapse.tokens import purpose_signer

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Our forms are a handful of short fields; this also bounds what an unauthenticated POST can make us hold.
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 32
REFUSED = "This form has expired or did not come from this site. Reload the page and try again."


def token_for(server_secret: bytes, binding: str) -> str:
    """The token for one session (or one sign-in attempt): a signature of its id, so nothing needs storing."""
    return purpose_signer(server_secret, "csrf").mac(binding)


def verify_token(server_secret: bytes, binding: str, presented: str | None) -> None:
    if not presented or not purpose_signer(server_secret, "csrf").verify_mac(binding, presented):
        raise Forbidden(REFUSED)


def check_origin(request: Request, *, public_url: AnyHttpUrl | None) -> None:
    """Refuse a request a browser says came from elsewhere, a sibling subdomain included. Absent headers prove
    nothing either way (non-browser clients, old browsers); the token check still applies to them. `Origin: null`
    (sandboxed frames, data: URLs, no-referrer pages) is refused: our own pages send their origin."""
    if request.headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        raise Forbidden(REFUSED)
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {f"{request.url.scheme}://{request.url.netloc}"}
    if public_url is not None:  # LAPSE_PUBLIC_URL: the origin links (and a proxy's users) see
        default_port = {"http": 80, "https": 443}.get(public_url.scheme)
        port = f":{public_url.port}" if public_url.port not in (None, default_port) else ""
        allowed.add(f"{public_url.scheme}://{public_url.host}{port}")
    if origin.rstrip("/").lower() not in {value.lower() for value in allowed}:
        raise Forbidden(REFUSED)


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, read with a cap. Starlette's own parser would hold a field of any size in memory."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise TooLarge("The form is too large.")
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if body and content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMedia("Send the form as application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("The form could not be read.") from exc
    return dict(pairs)
