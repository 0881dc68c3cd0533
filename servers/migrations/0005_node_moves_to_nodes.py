# Node moved to the nodes app with its table unchanged: only Django's model state changes here.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('benchmarks', '0003_plan_node_in_nodes'),
        ('models_registry', '0004_node_in_nodes'),
        ('nodes', '0001_initial'),
        ('servers', '0004_supervisor'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='server',
                    name='node',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='servers', to='nodes.node'),
                ),
                migrations.DeleteModel(
                    name='NodeSample',
                ),
                migrations.DeleteModel(
                    name='Node',
                ),
            ],
            database_operations=[],
        ),
    ]
