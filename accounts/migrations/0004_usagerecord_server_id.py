# The ledger keeps the server's id instead of a foreign key into the servers app, which sits above
# accounts. The column keeps its name and its rows; only its constraint goes.
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_apikey_gateway_only"),
        ("servers", "0004_supervisor"),
    ]

    operations = [
        migrations.AlterField(
            model_name="usagerecord",
            name="server",
            field=models.ForeignKey(blank=True, db_constraint=False, null=True,
                                    on_delete=models.deletion.SET_NULL, related_name="+", to="servers.server"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="usagerecord", name="server"),
                migrations.AddField(model_name="usagerecord", name="server_id",
                                    field=models.BigIntegerField(blank=True, db_index=True, null=True)),
            ],
            database_operations=[],
        ),
    ]
