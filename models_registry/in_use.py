"""Which live servers use a repo's weights on a node: asked before a deletion, shown on the weights page.

The servers app answers through the `weights_in_use` signal, since the registry sits below it and must not
import it. Arguments: `sender` (ModelProfile) and `node_ids` (list of Node ids). Each receiver returns
{(node_id, repo id in lower case): [{"name": served model name, "port": int, "status": str}, ...]}.
"""
from django.dispatch import Signal

weights_in_use = Signal()


def weights_in_use_by(*, node_ids: list[int]) -> dict[tuple[int, str], list[dict]]:
    from models_registry.models import ModelProfile

    merged: dict[tuple[int, str], list[dict]] = {}
    for _receiver, answer in weights_in_use.send(sender=ModelProfile, node_ids=list(node_ids)):
        for key, users in (answer or {}).items():
            merged.setdefault(key, []).extend(users)
    return merged


def weights_users(*, repo_id: str, node) -> list[dict]:
    """The live servers on `node` whose profile names `repo_id`."""
    return weights_in_use_by(node_ids=[node.pk]).get((node.pk, repo_id.lower()), [])
