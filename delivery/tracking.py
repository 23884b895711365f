"""Open and click tracking for email.

Before an email goes out, every http(s) link of its HTML is replaced by
`/t/c/<token>/`, where the token names the message and the link's position, signed
with HMAC under SECRET_KEY; the original URLs stay in the message's rendered content.
A click is redirected to the stored URL only, so the redirect cannot be pointed
anywhere else (no open redirect), and a token cannot be forged or guessed. A 1x1
pixel, `/t/o/<token>.gif`, records the open. Links to the workspace's own domains get
`utm_*` parameters, never overwriting ones the link already has. The unsubscribe
link is left alone.

Machines are told apart from people where they can be (`machine_reason`): HEAD
requests, known link scanners' user agents, Apple Mail Privacy Protection's fetcher
(it loads every image of every message on arrival, with the bare user agent
"Mozilla/5.0"; Apple Mail itself sends a full one), and a click within
MACHINE_CLICK_SECONDS of the send (a security scanner following links). They do not
move the message; each is kept once as a machine_opened / machine_clicked message
event with its reason, for analytics to show beside the people's.
"""

from __future__ import annotations

import html as html_lib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core import signing
from django.urls import reverse

_SIGNER = signing.Signer(salt="delivery.tracking", algorithm="sha256")
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
MACHINE_CLICK_SECONDS = 3
SCANNER_AGENTS = re.compile(
    r"(bot|crawler|spider|preview|scanner|barracuda|mimecast|proofpoint|safelinks|"
    r"microsoft office|python-requests|curl|wget|headless)",
    re.IGNORECASE,
)


def token(message_id: int, index: int) -> str:
    return _SIGNER.sign(f"{signing.b62_encode(message_id)}.{signing.b62_encode(index)}")


def token_parts(value: str) -> tuple[int, int] | None:
    """(message id, link index) of a token, or None when it is not ours."""
    try:
        message_part, index_part = _SIGNER.unsign(value).split(".")
        return signing.b62_decode(message_part), signing.b62_decode(index_part)
    except (signing.BadSignature, ValueError):
        return None


def _base() -> str:
    return settings.PUBLIC_URL.rstrip("/")


def with_utm(url: str, *, domains: list[str], source: str, campaign: str, medium: str) -> str:
    """`url` with utm_source / utm_medium / utm_campaign added when its host is one of
    `domains` (or under one); parameters it already has are kept as they are."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not any(
        host == d or host.endswith("." + d) for d in (d.lower().strip(".") for d in domains)
    ):
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    wanted = {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign}
    query += [(name, value) for name, value in wanted.items() if value and name not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


def track_email(
    *,
    html: str,
    message_id: int,
    unsubscribe_url: str,
    track_opens: bool,
    track_clicks: bool,
    utm_domains: list[str],
    utm_source: str,
    campaign: str,
) -> tuple[str, list[str]]:
    """The HTML to send and the links it points at (by index, after UTM)."""
    links: list[str] = []

    def replace(match: re.Match) -> str:
        url = html_lib.unescape(match.group(3).strip())
        if not url.lower().startswith(("http://", "https://")) or url == unsubscribe_url:
            return match.group(0)
        url = with_utm(
            url, domains=utm_domains, source=utm_source, campaign=campaign, medium="email"
        )
        if not track_clicks:
            return f"{match.group(1)}{match.group(2)}{html_lib.escape(url)}{match.group(2)}"
        links.append(url)
        path = reverse("track_click", kwargs={"token": token(message_id, len(links) - 1)})
        return f"{match.group(1)}{match.group(2)}{_base()}{path}{match.group(2)}"

    html = _HREF.sub(replace, html)
    if track_opens:
        pixel_path = reverse("track_open", kwargs={"token": token(message_id, 0)})
        pixel = f'<img src="{_base()}{pixel_path}" width="1" height="1" alt="" style="display:block;border:0">'
        closing = html.lower().rfind("</body>")
        html = html[:closing] + pixel + html[closing:] if closing >= 0 else html + pixel
    return html, links


def machine_reason(request) -> str:
    """Why this request is a machine's ("head", "scanner", "apple_privacy_proxy"), or
    "" for what looks like a person."""
    if request.method == "HEAD":
        return "head"
    agent = request.headers.get("User-Agent", "").strip()
    if SCANNER_AGENTS.search(agent):
        return "scanner"
    if agent == "Mozilla/5.0":
        return "apple_privacy_proxy"
    return ""
