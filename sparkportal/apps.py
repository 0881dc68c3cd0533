from django.apps import AppConfig


class SparkportalConfig(AppConfig):
    name = "sparkportal"
    verbose_name = "Spark Portal"
