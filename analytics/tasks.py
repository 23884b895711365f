"""RQ entry points of the analytics app: take ids, call one service, safe to run twice."""


def customer_value_recompute(workspace_id: int) -> int:
    """Recompute a workspace's customer values and the segments that read them."""
    from analytics.value import customer_value_recompute as recompute
    from engagement_site.workspaces.models import Workspace

    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:  # deleted since the job was queued
        return 0
    return recompute(workspace=workspace)
