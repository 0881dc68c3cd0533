# The usage ledger, moved here from the accounts app. Its table keeps the accounts app's name, so this
# changes only Django's model state and the content type: existing databases keep every row.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def content_type_to_gateway(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="gateway", model="usagerecord").exists():
        ContentType.objects.filter(app_label="accounts", model="usagerecord").update(app_label="gateway")


def content_type_to_accounts(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="gateway", model="usagerecord").update(app_label="accounts")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_usagerecord_server_id'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('gateway', '0002_costs'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='UsageRecord',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('username', models.CharField(max_length=150)),
                        ('key_prefix', models.CharField(blank=True, help_text='Empty for the chat page (session).', max_length=16)),
                        ('model', models.CharField(max_length=200)),
                        ('server_id', models.BigIntegerField(blank=True, db_index=True, null=True)),
                        ('endpoint', models.CharField(max_length=40)),
                        ('stream', models.BooleanField(default=False)),
                        ('status', models.PositiveSmallIntegerField()),
                        ('error_code', models.CharField(blank=True, max_length=60)),
                        ('prompt_tokens', models.PositiveIntegerField(default=0)),
                        ('completion_tokens', models.PositiveIntegerField(default=0)),
                        ('ttft_ms', models.FloatField(blank=True, null=True)),
                        ('duration_ms', models.FloatField(default=0)),
                        ('client_ip', models.GenericIPAddressField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(db_index=True)),
                        ('api_key', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='accounts.apikey')),
                        ('user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'accounts_usagerecord',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(fields=['user', '-created_at'], name='accounts_usage_user_time'), models.Index(fields=['model', '-created_at'], name='accounts_usage_model_time')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_gateway, content_type_to_accounts),
    ]
