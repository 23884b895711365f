"""`/ws/journeys/<id>/`: live node numbers for an open builder.

The socket is the logged-in session's (Channels' AuthMiddlewareStack): it is refused
(closed before the handshake completes) without a session, for a journey of a
workspace the user is not a member of, or for a role without journeys.view. On
connect it sends the numbers as they are, so a builder that reconnects after a drop
catches up at once; then a frame at most every FRAME_INTERVAL while they change
(journeys.live)."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from journeys import live

TRAILING = 0.3  # seconds: one more frame after a burst, for changes the pings skipped
# A frame computed for one socket is sent to the others of the same process that ask for
# the same numbers within this many seconds: a change pings every open page at once,
# and 100 builders of one journey recomputing it one after another in the database
# thread made the last wait about a second (bench/bench_live.py). The trailing frame
# after a burst is computed afresh, so every page ends on current numbers.
SHARE_SECONDS = 0.1

_shared_frames: dict[tuple, tuple[float, asyncio.Future]] = {}


@database_sync_to_async
def _journey_for(user, journey_id: int, permission: str):
    from engagement_site.workspaces.models import Membership
    from engagement_site.workspaces.roles import role_has_permission
    from journeys.models import Journey

    if not user.is_authenticated:
        return None
    journey = Journey.objects.filter(pk=journey_id).select_related("workspace").first()
    if journey is None:
        return None
    role = (
        Membership.objects.filter(workspace=journey.workspace, user=user)
        .values_list("role", flat=True)
        .first()
    )
    if role is None or not role_has_permission(role, permission):
        return None
    return journey


@database_sync_to_async
def _metrics(journey) -> dict:
    return live.journey_metrics(journey=journey)


class LiveNumbersConsumer(AsyncJsonWebsocketConsumer):
    """A socket that sends numbers on connect, then at most every FRAME_INTERVAL while
    pings on its group say they moved, and once more just after a burst. Subclasses
    give `authorize` (the group to join, or None to refuse) and `frame`."""

    async def authorize(self) -> str | None:
        raise NotImplementedError

    async def frame(self) -> dict:
        raise NotImplementedError

    def frame_key(self) -> tuple:
        """What makes two sockets' frames the same (the sockets of one group by default)."""
        return (self.group,)

    async def _shared_frame(self) -> dict:
        loop = asyncio.get_running_loop()
        now = loop.time()
        key = self.frame_key()
        entry = _shared_frames.get(key)
        if entry is None or now - entry[0] >= SHARE_SECONDS:
            for stale in [k for k, (at, _) in _shared_frames.items() if now - at >= 60]:
                del _shared_frames[stale]
            entry = (now, asyncio.ensure_future(self.frame()))
            _shared_frames[key] = entry
        # Shielded: one socket closing must not cancel the computation the others await.
        return await asyncio.shield(entry[1])

    async def connect(self):
        self.group = await self.authorize()
        if self.group is None:
            await self.close(code=4403)
            return
        self.dirty = False
        self.flusher: asyncio.Task | None = None
        self.last_frame = 0.0
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._send_frame()

    async def disconnect(self, code):
        if getattr(self, "group", None) is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            if self.flusher is not None:
                self.flusher.cancel()

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "refresh":  # the page asks after a long sleep
            await self._send_frame()

    async def numbers_changed(self, event):
        self.dirty = True
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())

    async def _flush(self):
        loop = asyncio.get_running_loop()
        while self.dirty:
            wait = self.last_frame + live.FRAME_INTERVAL - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.dirty = False
            await self._send_frame()
        await asyncio.sleep(TRAILING)
        await self._send_frame()

    async def _send_frame(self):
        self.last_frame = asyncio.get_running_loop().time()
        await self.send_json({**await self._shared_frame(), "at": timezone.now().isoformat()})


class JourneyLiveConsumer(LiveNumbersConsumer):
    # Read by tests/workspaces/test_isolation_websockets.py, like a view's declaration.
    required_permission = "journeys.view"

    async def authorize(self) -> str | None:
        journey_id = int(self.scope["url_route"]["kwargs"]["journey_id"])
        self.journey = await _journey_for(
            self.scope.get("user"), journey_id, self.required_permission
        )
        return None if self.journey is None else live.group_name(self.journey.pk)

    async def journey_changed(self, event):
        await self.numbers_changed(event)

    async def frame(self) -> dict:
        return {"type": "metrics", **await _metrics(self.journey)}
