# Node moved to the nodes app with its table unchanged: only Django's model state changes here.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('benchmarks', '0002_run_lease_plan_node'),
        ('nodes', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='benchmarkplan',
                    name='node',
                    field=models.ForeignKey(blank=True, help_text="Where the plan's servers start; empty: this host's node.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='nodes.node'),
                ),
            ],
            database_operations=[],
        ),
    ]
