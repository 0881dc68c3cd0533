"""The per-node Hugging Face token is sealed at rest, readable only with the portal's key, and never echoed."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from models_registry import services
from models_registry.models import Download
from tests.models_registry.conftest import GATED, GATED_TOKEN


def stored_value(node) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sealed FROM models_registry_nodehubtoken WHERE node_id = %s", [node.pk])
        return cursor.fetchone()[0]


def run(node, repo_id):
    download, _ = services.download_request(actor=None, node=node, repo_id=repo_id)
    services.download_run(download_id=download.pk)
    return Download.objects.get(pk=download.pk)


def test_the_token_is_stored_encrypted_and_opens_the_gated_repo(hub, node, admin_user):
    services.hub_token_set(node=node, token=GATED_TOKEN, actor=admin_user)
    raw = stored_value(node)
    assert GATED_TOKEN not in raw and raw.startswith("fernet:")
    assert services.hub_token_reveal(node=node) == GATED_TOKEN
    assert run(node, GATED).status == "done"


def test_a_dedicated_secrets_key_survives_a_new_secret_key(hub, node, admin_user, settings):
    settings.PORTAL_SECRETS_KEY = "shared by every host"
    services.hub_token_set(node=node, token=GATED_TOKEN, actor=admin_user)
    settings.SECRET_KEY = "rotated-" + settings.SECRET_KEY
    assert services.hub_token_reveal(node=node) == GATED_TOKEN
    settings.PORTAL_SECRETS_KEY = "another key"
    failed = run(node, GATED)
    assert (failed.status, failed.error_code) == ("failed", "token_unreadable")
    assert failed.error == (f"The Hugging Face token of node {node.name} cannot be decrypted with this host's key: it "
                            "was saved under another SECRET_KEY / PORTAL_SECRETS_KEY. Give every host the same "
                            "PORTAL_SECRETS_KEY, or set the token again (Models → Weights on disk).")


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_tokens_stored_in_plain_text(node, admin_user):
    before, after = [("models_registry", "0002_modelprofile_catalog_name_and_more")], \
        [("models_registry", "0003_sealed_tokens_node_weights_lookups")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old_state = MigrationExecutor(connection).loader.project_state(before[0]).apps
        old_state.get_model("models_registry", "NodeHubToken").objects.create(node_id=node.pk, token=GATED_TOKEN)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert after[0] in MigrationExecutor(connection).loader.applied_migrations
    raw = stored_value(node)
    assert GATED_TOKEN not in raw and raw.startswith("fernet:")
    assert services.hub_token_reveal(node=node) == GATED_TOKEN
