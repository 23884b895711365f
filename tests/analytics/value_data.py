"""A small shop whose customer values are worked out by hand in the tests.

NOW is 2026-06-01 00:00 UTC; every event happens at NOW minus a whole number of days.
Settings are the defaults: discount 10%, lifespan 3 years, revenue events "Order
Completed" (property revenue, else total), window 90 days, weights email 1, web 1,
mobile 1, social 1, support 0.5, purchase 2, review 1.5; high LTV 500, medium 100,
high engagement 60, at risk after 30 days, lost after 90.

ann: orders 100 days ago (revenue 300) and 10 days ago (total "100"), opened and
     clicked an email 5 days ago, pages 4, 3 and 2 days ago.
ben: one order 730 days ago (revenue 1000), a page 20 days ago.
cat: 1 day ago: 3 pages, 2 screens, a "Review Submitted", opened and clicked an email.
dan: a page 45 days ago; an SMS opened and an email machine-opened (neither counts).
eve: nothing at all.
The other workspace has a big spender with many pages: never counted here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from delivery.models import Message, MessageEvent
from segments.models import Event, Profile

NOW = datetime(2026, 6, 1, tzinfo=UTC)
_ids = count(1)


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def event(profile: Profile, days: int, name: str = "", *, type: str = "track", **properties):
    Event.objects.create(
        workspace_id=profile.workspace_id,
        profile=profile,
        type=type,
        name=name,
        properties=properties,
        message_id=f"m-{next(_ids)}",
        timestamp=ago(days),
    )


def message(
    profile: Profile, days: int, *, channel: str = "email", kinds=("opened", "clicked")
) -> Message:
    sent = ago(days)
    row = Message.objects.create(
        workspace_id=profile.workspace_id,
        profile=profile,
        channel=channel,
        idempotency_key=f"k-{next(_ids)}",
        status="clicked" if "clicked" in kinds else "sent",
        sent_at=sent,
        clicked_at=sent if "clicked" in kinds else None,
    )
    for kind in ("sent", *kinds):
        MessageEvent.objects.create(
            workspace_id=profile.workspace_id, message=row, kind=kind, at=sent
        )
    return row


def shop(workspace, other_workspace) -> dict[str, Profile]:
    people = {
        name: Profile.objects.create(
            workspace=workspace, user_id=name, email=f"{name}@example.com", traits={"name": name}
        )
        for name in ("ann", "ben", "cat", "dan", "eve")
    }
    ann, ben, cat, dan = people["ann"], people["ben"], people["cat"], people["dan"]
    event(ann, 100, "Order Completed", revenue=300)
    event(ann, 10, "Order Completed", total="100")
    message(ann, 5)
    for days in (4, 3, 2):
        event(ann, days, "Home", type="page")
    event(ben, 730, "Order Completed", revenue=1000)
    event(ben, 20, "Pricing", type="page")
    for _ in range(3):
        event(cat, 1, "Home", type="page")
    for _ in range(2):
        event(cat, 1, "Feed", type="screen")
    event(cat, 1, "Review Submitted", rating=5)
    message(cat, 1)
    event(dan, 45, "Home", type="page")
    message(dan, 3, channel="sms", kinds=("opened",))
    message(dan, 3, kinds=("machine_opened",))
    rich = Profile.objects.create(workspace=other_workspace, user_id="ann")
    event(rich, 1, "Order Completed", revenue=99999)
    for _ in range(10):
        event(rich, 1, "Home", type="page")
    return people
