from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "classifier"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sparkportal import events

        def may_follow_job(user, group: str) -> bool:
            from classifier import selectors

            try:
                selectors.job_get_visible(user=user, job_id=int(group.rsplit(".", 1)[1]))
            except Exception:  # noqa: BLE001 - unknown, malformed or someone else's job: refuse
                return False
            return True

        events.register_group("classifier.job", may_follow_job)
