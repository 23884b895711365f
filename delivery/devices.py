"""Push devices: the app installs (FCM registration tokens) and browser subscriptions
(web push endpoints) a profile's push messages go to.

Writes and reads live together here because the device API, the push channels and
the policies are their only callers. A token is unique within a workspace and kind:
registering it again moves it to the profile that registers it (an app reinstalled
by someone else, a shared browser), refreshes its keys and brings it back if it was
disabled. Providers disable devices (uninstalled app, expired subscription); apps
unregister them on logout. Nothing is deleted, so the log keeps why a device stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from delivery.models import Device

# The channel that sends to each kind of device.
CHANNEL_KINDS = {"push": Device.Kind.FCM, "web_push": Device.Kind.WEB_PUSH}
PLATFORMS = ("ios", "android", "web")
# The push services of the browsers that ship web push (Chrome/Edge through FCM,
# Firefox, Safari, Windows). A subscription endpoint elsewhere would let anyone with
# the public write key make the server POST to a host of their choosing.
DEFAULT_WEB_PUSH_HOSTS = (
    "fcm.googleapis.com",
    "push.services.mozilla.com",
    "push.apple.com",
    "notify.windows.com",
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DeviceInvalid(ValueError):
    """A device registration that cannot be stored; `field` names the bad part."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def web_push_hosts() -> tuple[str, ...]:
    """Hosts (and their subdomains) a web push endpoint may point at:
    settings.WEB_PUSH_ENDPOINT_HOSTS when set (development adds its local push
    server), else the browsers' push services."""
    return tuple(getattr(settings, "WEB_PUSH_ENDPOINT_HOSTS", DEFAULT_WEB_PUSH_HOSTS))


def web_push_endpoint_problem(endpoint: str) -> str:
    """Why a web push endpoint must not be used ("" when it may): https on a known push
    service; plain http only for a loopback host listed explicitly (a local push
    server in development)."""
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "the endpoint is not a URL"
    if not host:
        return "the endpoint is not an absolute URL"
    allowed = web_push_hosts()
    known = any(host == name or host.endswith(f".{name}") for name in allowed)
    if not known:
        return f"the endpoint's host {host!r} is not a known push service"
    if parts.scheme == "https":
        return ""
    if parts.scheme == "http" and host in _LOOPBACK and host in allowed:
        return ""
    return "the endpoint must be an https URL"


# --------------------------------------------------------------------------- writes


def device_check(*, kind: str, token: str, keys: dict, platform: str) -> tuple[str, dict, str]:
    """The (token, keys, platform) to store, cleaned; DeviceInvalid names a bad field."""
    if kind not in Device.Kind.values:
        raise DeviceInvalid("kind", f"`kind` must be one of {', '.join(Device.Kind.values)}.")
    if not isinstance(token, str) or not token.strip():
        field = "token" if kind == Device.Kind.FCM else "subscription.endpoint"
        raise DeviceInvalid(field, f"`{field}` is required and must be a non-empty string.")
    token = token.strip()
    if len(token) > Device._meta.get_field("token").max_length:
        raise DeviceInvalid("token", "`token` is longer than 1000 characters.")
    if platform and platform not in PLATFORMS:
        raise DeviceInvalid("platform", f"`platform` must be one of {', '.join(PLATFORMS)}.")
    if kind == Device.Kind.FCM:
        if platform not in ("ios", "android"):
            raise DeviceInvalid("platform", "`platform` must be ios or android for fcm devices.")
        return token, {"platform": platform}, platform
    problem = web_push_endpoint_problem(token)
    if problem:
        raise DeviceInvalid("subscription.endpoint", f"`subscription.endpoint`: {problem}.")
    for name in ("p256dh", "auth"):
        value = keys.get(name) if isinstance(keys, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise DeviceInvalid(
                f"subscription.keys.{name}", f"`subscription.keys.{name}` is required."
            )
    return token, {"p256dh": keys["p256dh"].strip(), "auth": keys["auth"].strip()}, "web"


def device_register(
    *, workspace, profile, kind: str, token: str, keys: dict | None = None, platform: str = ""
) -> Device:
    """Store the device for the profile (DeviceInvalid names a bad field). The same
    token again moves it here, takes the new keys and enables it again."""
    if profile.workspace_id != workspace.pk:
        raise DeviceInvalid("profile", "the profile belongs to another workspace")
    token, keys, platform = device_check(kind=kind, token=token, keys=keys or {}, platform=platform)
    now = timezone.now()
    device, _ = Device.objects.update_or_create(
        workspace=workspace,
        kind=kind,
        token=token,
        defaults={
            "profile": profile,
            "keys": keys,
            "platform": platform,
            "last_seen": now,
            "disabled_at": None,
            "disabled_reason": "",
        },
        create_defaults={
            "profile": profile,
            "keys": keys,
            "platform": platform,
            "created_at": now,
            "last_seen": now,
        },
    )
    return device


def device_unregister(*, workspace, kind: str, token: str) -> int:
    """The app or browser gave the token up (logout, permission withdrawn): disable it
    in this workspace. Returns how many devices stopped (0 or 1)."""
    return devices_disable(
        devices=Device.objects.filter(workspace=workspace, kind=kind, token=(token or "").strip()),
        reason="unregistered by the app",
    )


def device_touch(*, device_ids: Iterable[int]) -> None:
    """The provider took a message for these devices: they are still there."""
    ids = list(device_ids)
    if ids:
        Device.objects.filter(pk__in=ids).update(last_seen=timezone.now())


def devices_disable(*, devices, reason: str) -> int:
    """Stop sending to these devices (a queryset); the first reason stays."""
    with transaction.atomic():
        return devices.filter(disabled_at__isnull=True).update(
            disabled_at=timezone.now(), disabled_reason=reason[:200]
        )


def device_disable(*, device_id: int, reason: str) -> int:
    return devices_disable(devices=Device.objects.filter(pk=device_id), reason=reason)


def profile_resolve(
    *, workspace, user_id: str | None, anonymous_id: str | None, traits: dict | None = None
):
    """The profile these ids name in the workspace, created (and linked, and merged)
    by the rules ingestion follows (segments.identity), so a device registered before
    the app's first event lands on the profile its events will land on. `traits` are
    merged in as an identify call's would be (an email there fills the column)."""
    from segments.identity import ANONYMOUS_ID, USER_ID, IdentityGraph
    from segments.models import Profile

    keys = {(USER_ID, user_id)} if user_id else set()
    if anonymous_id:
        keys.add((ANONYMOUS_ID, anonymous_id))
    with transaction.atomic():
        graph = IdentityGraph.load(workspace_id=workspace.pk, keys=keys)
        state = graph.resolve(user_id=user_id, anonymous_id=anonymous_id, at=timezone.now())
        if traits:
            state.traits = {**state.traits, **traits}
            state.changed = True
            state.refresh_columns()
        graph.save()
        return Profile.objects.get(workspace=workspace, pk=state.survivor().pk)


# --------------------------------------------------------------------------- reads


def active_devices(*, workspace_id: int, profile_ids: Iterable[int], kind: str) -> dict:
    """profile id -> that profile's enabled devices of a kind, newest first (one query)."""
    found: dict[int, list[Device]] = {}
    for device in Device.objects.filter(
        workspace_id=workspace_id,
        profile_id__in=list(profile_ids),
        kind=kind,
        disabled_at__isnull=True,
    ).order_by("-last_seen", "-pk"):
        found.setdefault(device.profile_id, []).append(device)
    return found


def device_unreachable_reason(*, profile, channel: str) -> str:
    """ "no_device" when a push channel has nowhere to send for the profile; meant for
    delivery.policies.unreachable_reason, so a fallback chain skips push at once."""
    kind = CHANNEL_KINDS.get(channel)
    if kind is None:
        return ""
    has_device = Device.objects.filter(
        workspace_id=profile.workspace_id, profile=profile, kind=kind, disabled_at__isnull=True
    ).exists()
    return "" if has_device else "no_device"
