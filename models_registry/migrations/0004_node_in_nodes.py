# Node moved to the nodes app with its table unchanged: only Django's model state changes here.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('models_registry', '0003_sealed_tokens_node_weights_lookups'),
        ('nodes', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='download',
                    name='node',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='downloads', to='nodes.node'),
                ),
                migrations.AlterField(
                    model_name='nodehubtoken',
                    name='node',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='hub_token', to='nodes.node'),
                ),
                migrations.AlterField(
                    model_name='nodeweights',
                    name='node',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='weights', to='nodes.node'),
                ),
                migrations.AlterField(
                    model_name='reposnapshot',
                    name='lookup_node',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='nodes.node'),
                ),
                migrations.AlterField(
                    model_name='weightsdeletion',
                    name='node',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='weights_deletions', to='nodes.node'),
                ),
            ],
            database_operations=[],
        ),
    ]
