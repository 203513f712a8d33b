"""HTML pages: the Jinja2 environment (autoescape on for every template), the headers every page carries, the
filters templates share, and content negotiation between a browser and an API client."""

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from lapse.db.base import utc_now

# No inline script or style anywhere, so none is allowed: an injected tag could not run even if escaping failed.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    # Pages carry CSRF tokens, file names and link states that change with every download: never cache them.
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}

# A 401 must name a scheme (RFC 9110 §11.6.1), but `Basic` would make a browser pop up its own password prompt
# over our page; a scheme no browser knows keeps our form in charge.
FORM_CHALLENGE = 'Form realm="lapse"'


def root_path(request: Request) -> str:
    """Where the app is mounted ('' or '/prefix' behind a proxy): page URLs are built from it, never from Host."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def until(moment: datetime, now: datetime | None = None) -> str:
    """'in 3 d 4 h', 'in 59 min', 'expired': what the countdown script also shows, for the first paint."""
    seconds = int((moment - (now or utc_now())).total_seconds())
    if seconds <= 0:
        return "expired"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"in {days} d {hours} h"
    if hours:
        return f"in {hours} h {minutes} min"
    if minutes:
        return f"in {minutes} min {seconds} s"
    return f"in {seconds} s"


def utc(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def day(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y}"


def size(value: int) -> str:
    if value < 1024:
        return "1 byte" if value == 1 else f"{value} bytes"
    amount = value / 1024
    for unit in ("KB", "MB", "GB"):
        if amount < 1024:
            return f"{amount:.1f}".removesuffix(".0") + f" {unit}"
        amount /= 1024
    return f"{amount:.1f} TB"


_env = Environment(
    loader=PackageLoader("lapse.web", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)
_env.filters |= {"until": until, "utc": utc, "day": day, "size": size}
templates = Jinja2Templates(env=_env)


def page(
    request: Request, name: str, *, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> Response:
    context.setdefault("root", root_path(request))
    base = dict(PAGE_HEADERS)
    if "user" in context or "csrf_token" in context:
        # A page with CSRF-protected forms: under `no-referrer` (every other answer's policy) a browser sends
        # `Origin: null` with their POSTs, and the Origin check could not tell our page from any other.
        base["Referrer-Policy"] = "same-origin"
    return templates.TemplateResponse(request, name, context, status_code=status, headers={**base, **(headers or {})})


def _quality(accept: str, media_type: str) -> float:
    """The q the Accept header gives media_type, from its most specific matching range (RFC 9110 §12.5.1)."""
    major = media_type.split("/", 1)[0]
    best_specificity, best_q = -1, 0.0
    for item in accept.split(","):
        media_range, *params = (part.strip().lower() for part in item.split(";"))
        specificity = {media_type: 2, f"{major}/*": 1, "*/*": 0}.get(media_range)
        if specificity is None or specificity <= best_specificity:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best_specificity, best_q = specificity, q
    return best_q


def prefers_html(request: Request) -> bool:
    """A browser navigation asks for text/html above JSON; curl's `*/*` and API clients do not."""
    accept = request.headers.get("accept", "")
    return _quality(accept, "text/html") > _quality(accept, "application/json")
