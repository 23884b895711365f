"""RQ entry points of delivery: take ids, call one service, safe to run twice."""

from __future__ import annotations


def messages_send_job(message_ids: list[int]) -> dict[str, int]:
    """Send these messages if they are still queued and due (a second run of the same
    job finds them sent, or locked by the first, and does nothing)."""
    from delivery.services import messages_send

    return messages_send(message_ids=message_ids)
