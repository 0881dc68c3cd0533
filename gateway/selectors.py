"""Reads of the gateway: the routing snapshot and who is calling. Blocking ORM code (see gateway.db)."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user
from django.db.models import QuerySet

from accounts import limits, revocation
from accounts import services as account_services
from accounts.models import ApiKey, User
from accounts.selectors import require_admin
from accounts.teams import selectors as team_selectors
from gateway.models import Conversation, QueueWeight, ServerCapacity
from models_registry.models import ModelProfile
from servers.models import Server, ServerGroup

# Never EXTERNAL: an engine the portal did not start may be anyone's (a local user serving under an
# existing model name would receive other users' prompts). An operator adopts it first (server_adopt).
READY = {Server.Status.READY}
STARTING = {Server.Status.QUEUED, Server.Status.STARTING, Server.Status.WAKING}
LOADABLE = {Server.Status.STOPPED, Server.Status.FAILED}


@dataclass
class ModelServers:
    """Where one model name can be served, as of one snapshot."""

    name: str
    max_model_len: int
    task: str = "chat"
    ready: list[tuple[int, str]] = field(default_factory=list)  # (server id, base url)
    starting: list[int] = field(default_factory=list)
    loadable: list[int] = field(default_factory=list)  # stopped/failed, marked load on demand
    sleeping: list[int] = field(default_factory=list)  # asleep: a request wakes one (servers.server_ensure_ready)
    stopping: list[int] = field(default_factory=list)
    idle: list[int] = field(default_factory=list)  # stopped, not loadable
    capacity: dict[int, int] = field(default_factory=dict)  # ready server id -> requests it may run at once
    # server id -> its node's last heartbeat (seconds since the epoch; None: never beat): routing skips a ready
    # server whose node went silent.
    seen: dict[int, float | None] = field(default_factory=dict)


def routing_snapshot() -> dict[str, ModelServers]:
    """Every model name the portal knows, with its servers by state (ready ones first by id)."""
    default_len = settings.PORTAL_GATEWAY_DEFAULT_MAX_MODEL_LEN
    models: dict[str, ModelServers] = {}
    for profile in ModelProfile.objects.only("name", "served_model_name", "repo_id", "max_model_len", "task"):
        models[profile.model_name] = ModelServers(profile.model_name, profile.max_model_len or default_len,
                                                  profile.task)
    servers = (Server.objects.select_related("profile", "node", "group").order_by("pk")
               .only("pk", "served_model_name", "host", "port", "status", "load_on_demand",
                     "profile__max_model_len", "profile__task", "profile__max_num_seqs",
                     "node__last_heartbeat_at", "group__status", "group__load_on_demand"))
    caps = _capacity_caps()
    # A multi-node group is reached through its leader (rank 0); its followers run headless.
    for server in servers.exclude(status=Server.Status.EXTERNAL).exclude(rank__gt=0):
        entry = models.get(server.served_model_name)
        if entry is None:
            profile = server.profile
            entry = models[server.served_model_name] = ModelServers(
                server.served_model_name, (profile.max_model_len if profile else None) or default_len,
                profile.task if profile else "chat")
        if server.status in READY:
            entry.ready.append((server.pk, server.base_url))
            entry.capacity[server.pk] = _capacity(server, caps)
            beat = server.node.last_heartbeat_at
            entry.seen[server.pk] = beat.timestamp() if beat else None
        elif server.status in STARTING:
            entry.starting.append(server.pk)
        elif server.status == Server.Status.STOPPING or _group_stopping(server):
            entry.stopping.append(server.pk)
        elif server.status == Server.Status.SLEEPING:
            entry.sleeping.append(server.pk)
        elif _loads_on_demand(server):
            entry.loadable.append(server.pk)
        else:
            entry.idle.append(server.pk)
    return models


def _group_stopping(server: Server) -> bool:
    # A stopped leader whose followers still stop: its group cannot start again yet.
    return server.group_id is not None and server.group.status == ServerGroup.Status.STOPPING


def _loads_on_demand(server: Server) -> bool:
    """A group's leader loads on demand when its group is marked (the whole group starts); a server when it is."""
    return server.group.load_on_demand if server.group_id is not None else server.load_on_demand


def _capacity_caps() -> tuple[dict[int, int], dict[int, int]]:
    by_server, by_profile = {}, {}
    for cap in ServerCapacity.objects.all():
        if cap.server_id is not None:
            by_server[cap.server_id] = cap.max_in_flight
        else:
            by_profile[cap.profile_id] = cap.max_in_flight
    return by_server, by_profile


def _capacity(server: Server, caps: tuple[dict[int, int], dict[int, int]]) -> int:
    """An operator's cap on the server, else on its profile, else the profile's max_num_seqs, else the default."""
    by_server, by_profile = caps
    if server.pk in by_server:
        return by_server[server.pk]
    if server.profile_id in by_profile:
        return by_profile[server.profile_id]
    profile = server.profile
    if profile is not None and profile.max_num_seqs:
        return profile.max_num_seqs
    return settings.PORTAL_QUEUE_DEFAULT_CAPACITY


@dataclass(slots=True)
class Principal:
    """The caller of one request, as the gateway caches it."""

    user_id: int
    username: str
    key_id: int | None
    prefix: str
    scopes: frozenset[str] | None  # None: the key may use all the owner may use
    allowed: frozenset[str] | None  # None: the owner may use every model
    limits: limits.Limits
    expires_at: float | None
    generation: str
    # The team the request is charged to (accounts.teams.selectors.team_charged), none or one: counted
    # with the caller in one quota check and written on the ledger row.
    teams: tuple[limits.TeamLimits, ...] = ()
    team_models: tuple[tuple[str, frozenset[str]], ...] = ()  # (team, models it allows): every one must allow
    weight: int = 1  # the user's share in the fair queue (gateway.models.QueueWeight)


def _principal(user: User, *, key: ApiKey | None = None, team_id: int | None = None,
               generation: str) -> Principal:
    charged = team_selectors.team_charged(user=user, key=key, team_id=team_id)
    quota = account_services.quota_effective(user=user)
    member = team_selectors.member_limits_for_user(user=user, team=charged)

    def limit(name: str) -> int:
        # The tighter of the user's own quota and the share a team admin gave them.
        values = [v for v in (quota[name], member[name]) if v is not None]
        return min(values) if values else limits.UNLIMITED

    return Principal(
        user_id=user.pk, username=user.get_username(), key_id=key.pk if key else None,
        prefix=key.prefix if key else "", scopes=frozenset(key.scopes) if key and key.scopes else None,
        allowed=frozenset(quota["allowed_models"]) if quota["allowed_models"] else None,
        limits=limits.Limits(limit("requests_per_minute"), limit("tokens_per_day"), limit("concurrent_requests")),
        expires_at=key.expires_at.timestamp() if key and key.expires_at else None, generation=generation,
        teams=(team_selectors.team_limits(team=charged),) if charged else (),
        team_models=team_selectors.team_model_rules(user=user), weight=_queue_weight(user))


def _queue_weight(user: User) -> int:
    row = QueueWeight.objects.filter(user=user).only("weight").first()
    return row.weight if row is not None else 1


def principal_for_key(*, raw: str) -> Principal:
    """The key's caller, read from the database (never from a cache: see accounts.revocation).

    Raises AuthenticationFailed saying why the key is refused."""
    generation = _generation()  # read before the rows, so a change in between is seen as stale
    key = account_services.api_key_authenticate(raw=raw)
    return _principal(key.owner, key=key, generation=generation)


def _generation() -> str:
    # Unknown (Redis down) matches no live generation: the quota script then asks for a reload.
    return revocation.generation_get() or ""


def principal_for_session(*, session_key: str, team_id: int | None = None) -> Principal | None:
    """The portal's own pages (chat) call the gateway with the login session instead of a key, naming the
    team to charge when the user has several. Raises AuthenticationFailed for a team that is not theirs."""
    from importlib import import_module

    generation = _generation()
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    user = get_user(SimpleNamespace(session=store))
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    return _principal(user, team_id=team_id, generation=generation)



def conversation_list(*, user: User) -> QuerySet[Conversation]:
    from gateway.models import Conversation

    return Conversation.objects.filter(user=user)


def conversations_for_admin(*, user: User) -> list[dict]:
    """Every conversation's owner, model, dates and size for an admin to delete: no title, prompt or message."""
    from django.db.models import Count

    require_admin(user)
    return list(Conversation.objects.order_by("-updated_at", "-id")
                .values("pk", "user__username", "model", "created_at", "updated_at")
                .annotate(messages=Count("messages"))[:500])


def conversation_get(*, user: User, conversation_id: int) -> Conversation:
    """Someone else's conversation is a 404, never a 403."""
    from django.http import Http404

    from gateway.models import Conversation

    conversation = Conversation.objects.filter(pk=conversation_id, user=user).first()
    if conversation is None:
        raise Http404("No such conversation among yours.")
    return conversation


def chat_models(*, user: User) -> list[str]:
    """Models the user may chat with now or load on demand (what the chat page offers)."""
    allowed = account_services.quota_effective(user=user)["allowed_models"]
    team_rules = team_selectors.team_model_rules(user=user)
    names = set()
    for name, entry in routing_snapshot().items():
        servable = entry.ready or entry.starting or entry.loadable or entry.sleeping
        if (servable and entry.task in ("chat", "code") and (not allowed or name in allowed)
                and all(name in models for _team, models in team_rules)):
            names.add(name)
    return sorted(names)
