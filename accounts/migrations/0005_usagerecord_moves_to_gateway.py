# The usage ledger moved to the gateway app (gateway.usage) with its table unchanged: state only.
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0004_usagerecord_server_id"),
        ("gateway", "0003_usagerecord_from_accounts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="UsageRecord")],
            database_operations=[],
        ),
    ]
