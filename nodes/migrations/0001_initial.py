# Node and NodeSample moved here from the servers app. Their tables keep the names the servers app gave
# them, so this migration changes only Django's model state (and renames their content types): existing
# databases keep every row.
import django.db.models.deletion
from django.db import migrations, models


def content_types_to_nodes(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("node", "nodesample"):
        if not ContentType.objects.filter(app_label="nodes", model=model).exists():
            ContentType.objects.filter(app_label="servers", model=model).update(app_label="nodes")


def content_types_to_servers(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="nodes", model__in=["node", "nodesample"]).update(app_label="servers")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("servers", "0004_supervisor"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Node",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("name", models.SlugField(max_length=64, unique=True)),
                        ("queue", models.CharField(max_length=80, unique=True)),
                        ("vllm_executable", models.CharField(blank=True, default="vllm", max_length=500)),
                        ("tei_executable", models.CharField(blank=True, default="text-embeddings-router",
                                                            max_length=500)),
                        ("ld_library_path_prefix", models.CharField(blank=True, max_length=1000)),
                        ("extra_env", models.JSONField(blank=True, default=dict)),
                        ("memory_budget", models.FloatField(
                            default=0.85, help_text="Max sum of gpu_memory_utilization on this node.")),
                        ("stop_timeout_s", models.PositiveIntegerField(default=30)),
                        ("last_heartbeat_at", models.DateTimeField(blank=True, null=True)),
                        ("host_facts", models.JSONField(blank=True, default=dict)),
                        ("gpu_facts", models.JSONField(blank=True, default=list)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={"ordering": ["name"], "db_table": "servers_node"},
                ),
                migrations.CreateModel(
                    name="NodeSample",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("at", models.DateTimeField(db_index=True)),
                        ("host", models.JSONField(default=dict)),
                        ("gpus", models.JSONField(default=list)),
                        ("node", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                   related_name="samples", to="nodes.node")),
                    ],
                    options={
                        "ordering": ["-at"],
                        "db_table": "servers_nodesample",
                        "indexes": [models.Index(fields=["node", "-at"], name="servers_nodesample_node_at")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_to_nodes, content_types_to_servers),
    ]
