from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

# The message a form or the service shows for a negative price, cost or wattage.
NOT_NEGATIVE = MinValueValidator(Decimal(0), message="Enter 0 or more.")


class Conversation(models.Model):
    """A chat of one user on the chat page; private to its owner."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["user", "-updated_at"], name="gateway_conversation_user")]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class ChatMessage(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=models.Q(role__in=["user", "assistant"]),
                                              name="gateway_chatmessage_role_valid")]


class ApiPrice(models.Model):
    """A paid API the Cost view compares the ledger against, in USD per 1M input and output tokens."""

    name = models.CharField(max_length=100, unique=True,
                            error_messages={"unique": "There is already a price with this name: edit that row."})
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4,
                                            validators=[NOT_NEGATIVE])
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4,
                                             validators=[NOT_NEGATIVE])
    cached_input_per_million = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, validators=[NOT_NEGATIVE],
        help_text="USD per 1M cached input tokens; empty: the input price.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]  # the defaults in the field notes' order, new rows after them
        constraints = [
            models.CheckConstraint(condition=models.Q(input_per_million__gte=0, output_per_million__gte=0),
                                   name="gateway_apiprice_not_negative"),
            models.CheckConstraint(condition=models.Q(cached_input_per_million__isnull=True)
                                   | models.Q(cached_input_per_million__gte=0),
                                   name="gateway_apiprice_cached_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class CostSettings(models.Model):
    """The one row (pk 1) of the Cost view's assumptions; defaults from the field notes (April 2026)."""

    electricity_per_kwh = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal("0.10"),
                                              validators=[NOT_NEGATIVE],
                                              help_text="USD per kWh.")
    hardware_cost = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("4500"),
                                        validators=[NOT_NEGATIVE],
                                        help_text="USD paid up front for the nodes, for the break-even.")
    load_watts = models.PositiveIntegerField(default=240, help_text="A node under load with no power reading.")
    idle_watts = models.PositiveIntegerField(default=60, help_text="An idle node with no power reading.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="gateway_costsettings_single_row")]

    def __str__(self) -> str:
        return "cost settings"


class UsageRecord(models.Model):
    """The ledger: one row per gateway request, written in batches off the hot path."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    key_prefix = models.CharField(max_length=16, blank=True, help_text="Empty for the chat page (session).")
    # The one team the request was charged to (null: personal). No database constraint: a team deleted
    # between the request and the batched write must not make the database refuse the row.
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False,
                             related_name="+")
    model = models.CharField(max_length=200)
    # A server's rows come and go; its requests stay in the ledger with its id.
    server_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    endpoint = models.CharField(max_length=40)
    stream = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=60, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(
        default=0, help_text="Of the prompt tokens, those served from the engine's prefix cache.")
    completion_tokens = models.PositiveIntegerField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(default=0)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        db_table = "accounts_usagerecord"  # created by the accounts app before usage moved here
        indexes = [
            models.Index(fields=["user", "-created_at"], name="accounts_usage_user_time"),
            models.Index(fields=["model", "-created_at"], name="accounts_usage_model_time"),
            models.Index(fields=["team", "-created_at"], name="gateway_usage_team_time"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.username} {self.model} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class QueueWeight(models.Model):
    """A user's share of a saturated model in the fair queue (gateway.admission); 1 when there is no row."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queue_weight")
    weight = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1, message="A weight is at least 1."),
                               MaxValueValidator(100, message="A weight is at most 100.")],
        help_text="Relative share when requests queue: a user of weight 3 gets three slots for each one of a "
                  "user of weight 1.")

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(weight__gte=1, weight__lte=100),
                                              name="gateway_queueweight_range")]

    def __str__(self) -> str:
        return f"weight {self.weight}"


class ServerCapacity(models.Model):
    """An operator's cap on requests in flight, for one server or every server of a profile.

    Without one, a server takes its profile's max_num_seqs (PORTAL_QUEUE_DEFAULT_CAPACITY when unset);
    beyond its cap, requests wait in the fair queue. A server's own cap beats its profile's."""

    server = models.OneToOneField("servers.Server", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="capacity_cap")
    profile = models.OneToOneField("models_registry.ModelProfile", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="capacity_cap")
    max_in_flight = models.PositiveIntegerField(validators=[MinValueValidator(1, message="A cap is at least 1.")])

    class Meta:
        verbose_name_plural = "server capacities"
        constraints = [
            models.CheckConstraint(condition=models.Q(server__isnull=True) ^ models.Q(profile__isnull=True),
                                   name="gateway_servercapacity_one_target"),
            models.CheckConstraint(condition=models.Q(max_in_flight__gte=1), name="gateway_servercapacity_min"),
        ]

    def __str__(self) -> str:
        return f"{self.server or self.profile}: {self.max_in_flight} in flight"
