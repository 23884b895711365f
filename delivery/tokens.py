"""Signed links in messages: unsubscribe (and, later, tracking). A token names one
message and carries an HMAC of it under SECRET_KEY, so it can be neither forged nor
guessed from another message's token."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

_UNSUBSCRIBE = signing.Signer(salt="delivery.unsubscribe", algorithm="sha256")


def unsubscribe_token(message_id: int) -> str:
    return _UNSUBSCRIBE.sign(signing.b62_encode(message_id))


def unsubscribe_message_id(token: str) -> int | None:
    """The message a token names, or None for a token that is not ours."""
    try:
        return signing.b62_decode(_UNSUBSCRIBE.unsign(token))
    except (signing.BadSignature, ValueError):
        return None


def unsubscribe_url(message_id: int) -> str:
    path = reverse("unsubscribe", kwargs={"token": unsubscribe_token(message_id)})
    return f"{settings.PUBLIC_URL.rstrip('/')}{path}"


def hook_url(*, channel: str, token: str) -> str:
    """The URL a provider calls back for one workspace's channel settings."""
    path = reverse("provider_hook", kwargs={"channel": channel, "token": token})
    return f"{settings.PUBLIC_URL.rstrip('/')}{path}"


_PREFERENCES = signing.Signer(salt="delivery.preferences", algorithm="sha256")


def preferences_token(profile_id: int) -> str:
    return _PREFERENCES.sign(signing.b62_encode(profile_id))


def preferences_profile_id(token: str) -> int | None:
    """The profile a preference-centre token names, or None for one that is not ours."""
    try:
        return signing.b62_decode(_PREFERENCES.unsign(token))
    except (signing.BadSignature, ValueError):
        return None


def preferences_url(profile_id: int) -> str:
    path = reverse("preferences", kwargs={"token": preferences_token(profile_id)})
    return f"{settings.PUBLIC_URL.rstrip('/')}{path}"


# Confirmation links live a week: an old confirmation email should not subscribe
# someone months later (they ask again, and get a new one).
CONFIRM_MAX_AGE_SECONDS = 7 * 24 * 3600
_CONFIRM = signing.TimestampSigner(salt="delivery.opt_in_confirm", algorithm="sha256")


def address_digest(address: str) -> str:
    """A short keyed digest of an address, so a link can say which address it was sent
    to without showing it."""
    import hashlib
    import hmac

    key = f"{settings.SECRET_KEY}:delivery.address".encode()
    return hmac.new(key, address.strip().lower().encode(), hashlib.sha256).hexdigest()[:16]


def confirm_token(message_id: int, *, address: str) -> str:
    return _CONFIRM.sign(f"{signing.b62_encode(message_id)}.{address_digest(address)}")


def confirm_parts(token: str) -> tuple[int | None, str, bool]:
    """(the confirmation message a token names, the digest of the address it was sent
    to, whether it has expired); (None, "", False) for a token that is not ours."""
    expired = False
    try:
        value = _CONFIRM.unsign(token, max_age=CONFIRM_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        value, expired = _CONFIRM.unsign(token), True
    except signing.BadSignature:
        return None, "", False
    encoded, _, digest = value.partition(".")
    try:
        return signing.b62_decode(encoded), digest, expired
    except ValueError:
        return None, "", False


def confirm_url(message_id: int, *, address: str) -> str:
    path = reverse("opt_in_confirm", kwargs={"token": confirm_token(message_id, address=address)})
    return f"{settings.PUBLIC_URL.rstrip('/')}{path}"
