"""Hub tokens sealed at rest; per-node weights scans and deletions; hub look-ups as tasks."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def seal_tokens(apps, schema_editor):
    """Tokens stored before sealing existed were plain text: seal each one with this portal's key."""
    from sparkportal.lib import sealed

    NodeHubToken = apps.get_model("models_registry", "NodeHubToken")
    for row in NodeHubToken.objects.all():
        if row.token and not sealed.is_sealed(row.token):
            row.sealed = sealed.seal(row.token)
        else:
            row.sealed = row.token
        row.save(update_fields=["sealed"])


def unseal_tokens(apps, schema_editor):
    from sparkportal.lib import sealed

    NodeHubToken = apps.get_model("models_registry", "NodeHubToken")
    for row in NodeHubToken.objects.all():
        try:
            row.token = sealed.unseal(row.sealed)
        except sealed.Unreadable:
            row.token = ""
        row.save(update_fields=["token"])


class Migration(migrations.Migration):

    dependencies = [
        ('models_registry', '0002_modelprofile_catalog_name_and_more'),
        ('servers', '0004_supervisor'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='nodehubtoken',
            name='sealed',
            field=models.TextField(default=''),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name='nodehubtoken',
            name='token',
            field=models.CharField(max_length=500, blank=True),
        ),
        migrations.RunPython(seal_tokens, unseal_tokens),
        migrations.RemoveField(
            model_name='nodehubtoken',
            name='token',
        ),
        migrations.CreateModel(
            name='NodeWeights',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('path', models.CharField(blank=True, max_length=500)),
                ('repos', models.JSONField(blank=True, default=list)),
                ('warnings', models.JSONField(blank=True, default=list)),
                ('free_bytes', models.BigIntegerField(blank=True, null=True)),
                ('total_bytes', models.BigIntegerField(blank=True, null=True)),
                ('error', models.TextField(blank=True)),
                ('requested_at', models.DateTimeField(blank=True, null=True)),
                ('scanned_at', models.DateTimeField(blank=True, null=True)),
                ('node', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='weights', to='servers.node')),
            ],
        ),
        migrations.CreateModel(
            name='WeightsDeletion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('repo_id', models.CharField(max_length=200)),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=16)),
                ('freed_bytes', models.BigIntegerField(default=0)),
                ('error_code', models.CharField(blank=True, max_length=40)),
                ('error', models.TextField(blank=True)),
                ('ip', models.GenericIPAddressField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('node', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='weights_deletions', to='servers.node')),
                ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'constraints': [
                    models.CheckConstraint(condition=models.Q(('status__in', ['queued', 'running', 'done', 'failed'])), name='models_registry_weightsdeletion_status_valid'),
                    models.UniqueConstraint(condition=models.Q(('status__in', ['queued', 'running'])), fields=('node', 'repo_id'), name='models_registry_weightsdeletion_one_active'),
                ],
            },
        ),
        migrations.AddField(
            model_name='reposnapshot',
            name='lookup_status',
            field=models.CharField(choices=[('queued', 'queued'), ('running', 'running'), ('done', 'done'), ('failed', 'failed')], default='done', max_length=16),
        ),
        migrations.AddField(
            model_name='reposnapshot',
            name='lookup_error_code',
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.AddField(
            model_name='reposnapshot',
            name='lookup_error',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='reposnapshot',
            name='lookup_node',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='servers.node'),
        ),
        migrations.AddField(
            model_name='reposnapshot',
            name='lookup_requested_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='reposnapshot',
            name='looked_up_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name='reposnapshot',
            constraint=models.CheckConstraint(condition=models.Q(('lookup_status__in', ('queued', 'running', 'done', 'failed'))), name='models_registry_reposnapshot_lookup_status_valid'),
        ),
    ]
