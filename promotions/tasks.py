"""django-q2 entry points of the promotion flow: they take ids and call a service."""

from promotions import notifications, services


def open_merge_request(promotion_id: int) -> str:
    """Open (or reuse) the promotion's merge request in GitLab; returns the promotion's state."""
    return services.open_merge_request(promotion_id=promotion_id).state


def merge_promotion(promotion_id: int) -> str:
    """Approve and merge the promotion's MR with the tested sha (retried by a Schedule while GitLab is down)."""
    return services.merge_promotion(promotion_id=promotion_id).state


def notify(promotion_id: int, event: str) -> int:
    """Tell people about a promotion (`requested`: tech leads; `decided`, `failed`: the requester)."""
    return notifications.notify(promotion_id=promotion_id, event=event)
