"""RQ entry points of the content app: take ids, call one service, safe to run twice."""

from __future__ import annotations


def asset_process_job(asset_id: int) -> None:
    """Read an uploaded asset's metadata and make its thumbnail."""
    from content.assets import asset_process

    asset_process(asset_id=asset_id)
