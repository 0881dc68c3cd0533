"""The Cost view: the arithmetic (energy from power samples with gaps, fallback wattage, API prices,
break-even), the report over the ledger, and the page with its audited price edits."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.usage import cost

S = cost.Sample
FLAT = {"load_w": 240, "idle_w": 60, "max_gap_s": 60}


def test_power_samples_are_integrated_with_the_trapezoid_rule():
    samples = [S(t, 100 + t, None) for t in range(0, 61, 10)]  # 100 W rising to 160 W over a minute
    whole = cost.energy(samples, start=0, end=60, busy=[], **FLAT)
    assert whole.measured_wh == pytest.approx(130 * 60 / 3600) and whole.estimated_wh == 0
    assert whole.measured_share == 1.0
    # A window inside the samples is cut at its edges, the power interpolated there.
    inner = cost.energy(samples, start=5, end=55, busy=[], **FLAT)
    assert inner.measured_wh == pytest.approx(130 * 50 / 3600) and inner.measured_s == 50


def test_a_gap_between_samples_falls_back_to_load_while_requests_run_and_idle_otherwise():
    samples = [S(0, 200, 90), S(10, 200, 90), S(20, 200, 90), S(320, 200, 90), S(330, 200, 90)]
    used = cost.energy(samples, start=0, end=330, busy=cost.merge([(100, 130), (120, 160)]), **FLAT)
    assert used.measured_s == 30 and used.measured_wh == pytest.approx(200 * 30 / 3600)
    # 20..320 has no reading: 60 s of requests at 240 W, 240 s idle at 60 W.
    assert used.estimated_s == 300 and used.estimated_wh == pytest.approx((60 * 240 + 240 * 60) / 3600)
    assert used.kwh == pytest.approx((6000 + 14400 + 14400) / 3600 / 1000)


def test_samples_without_a_power_reading_use_the_gpu_utilization_to_pick_load_or_idle():
    samples = [S(0, None, 80), S(30, None, 80), S(60, None, 0), S(90, None, 0)]
    used = cost.energy(samples, start=0, end=90, busy=[], **FLAT)
    # 0..30 busy (80 %), 30..60 mean 40 % still under load, 60..90 idle.
    assert used.measured_wh == 0 and used.estimated_wh == pytest.approx((60 * 240 + 30 * 60) / 3600)
    # A power reading on only one side of a stretch is no reading: it falls to the utilization.
    mixed = cost.energy([S(0, 500, 0), S(30, None, 0)], start=0, end=30, busy=[], **FLAT)
    assert mixed.measured_wh == 0 and mixed.estimated_wh == pytest.approx(30 * 60 / 3600)


def test_no_samples_at_all_is_the_field_notes_wattage_over_the_ledger():
    hour = cost.energy([], start=0, end=3600, busy=[(0, 900), (3000, 9999)], **FLAT)
    assert hour.estimated_wh == pytest.approx(1500 / 3600 * 240 + 2100 / 3600 * 60)
    assert hour.measured_share == 0.0
    assert cost.energy([S(0, 100, None)], start=10, end=10, busy=[], **FLAT).kwh == 0


def test_a_sample_sums_its_gpus_and_ignores_missing_readings():
    gpus = [{"power_w": 120.5, "utilization_pct": 40}, {"power_w": None, "utilization_pct": 20}, {"power_w": 30}]
    assert cost.sample_of(5.0, gpus) == S(5.0, 150.5, 30.0)
    assert cost.sample_of(5.0, [{"power_w": None, "utilization_pct": None}]) == S(5.0, None, None)
    assert cost.sample_of(5.0, []) == S(5.0, None, None)


def test_api_cost_and_break_even_match_the_field_notes():
    assert cost.api_cost(prompt_tokens=2_000_000, completion_tokens=1_000_000, input_per_million=Decimal(3),
                         output_per_million=Decimal(15)) == Decimal(21)
    # A $160 bill a month against $10 of electricity saves $150: $4,500 of hardware pays back in 30 months.
    month = cost.break_even(api_total=Decimal(160), electricity_total=Decimal(10), days=cost.DAYS_PER_MONTH,
                            hardware_cost=Decimal(4500))
    assert (month.saving_per_month, month.months) == (Decimal("150.00"), Decimal("30.0"))
    never = cost.break_even(api_total=Decimal(5), electricity_total=Decimal(10), days=cost.DAYS_PER_MONTH,
                            hardware_cost=Decimal(4500))
    assert never.months is None and never.saving_per_month == Decimal("-5.00")
    assert cost.electricity_cost(kwh=28.3, per_kwh=Decimal("0.10")) == Decimal("2.830")


# -- the report over the database ----------------------------------------------------------------

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def ledger(db, member_user, stranger):
    """A node since April 1st with an hour of 100 W samples and an hour of requests, and ledger rows."""
    from gateway.models import UsageRecord
    from nodes.models import Node, NodeSample
    from servers.models import Server

    node = Node.objects.create(name="spark", queue="node.spark")
    Node.objects.filter(pk=node.pk).update(created_at=datetime(2026, 4, 1, tzinfo=UTC))
    server = Server.objects.create(node=node, served_model_name="chat-model", port=8100)
    t0 = datetime(2026, 4, 20, 10, 0, tzinfo=UTC)
    NodeSample.objects.bulk_create([NodeSample(node=node, at=t0 + timedelta(seconds=30 * i),
                                               gpus=[{"power_w": 100.0, "utilization_pct": 50}])
                                    for i in range(121)])

    def row(user, at, prompt, completion, **extra):
        return UsageRecord(user=user, username=user.username, model="chat-model", endpoint="chat/completions",
                           status=200, prompt_tokens=prompt, completion_tokens=completion, created_at=at, **extra)

    UsageRecord.objects.bulk_create([
        row(member_user, datetime(2026, 3, 15, tzinfo=UTC), 100_000, 0),
        row(member_user, datetime(2026, 4, 10, tzinfo=UTC), 600_000, 300_000, server_id=server.pk,
            duration_ms=3_600_000),
        row(member_user, datetime(2026, 4, 11, tzinfo=UTC), 400_000, 200_000),
        row(stranger, datetime(2026, 4, 12, tzinfo=UTC), 1_000_000, 1_000_000),
    ])
    return node


def test_the_report_prices_each_users_month_and_the_nodes_electricity(ledger, member_user, admin_user):
    from gateway.usage import selectors

    mine = selectors.cost_report(user=member_user, months=2, now=NOW)
    names = [p.name for p in mine.prices]
    assert names == ["GPT-4o mini", "GPT-5", "Claude Sonnet 4.6", "Claude Opus 4.7"]
    assert [(r.month.strftime("%Y-%m"), r.username, r.prompt_tokens, r.completion_tokens) for r in mine.rows] == [
        ("2026-04", "mia", 1_000_000, 500_000), ("2026-03", "mia", 100_000, 0)]
    gpt5 = names.index("GPT-5")
    assert mine.rows[0].costs[gpt5] == Decimal("10.5")  # 1M x $3 + 0.5M x $15
    assert mine.rows[0].costs[names.index("GPT-4o mini")] == Decimal("0.45")
    assert mine.break_even == []  # the team's figure is for admins

    april, march = mine.electricity
    assert march.energy.kwh == 0  # before the node existed
    # April 1st to the 20th, 12:00 is 468 h: 1 h measured at 100 W, 1 h of requests at 240 W, 466 h idle at 60 W.
    assert april.energy.measured_wh == pytest.approx(100)
    assert april.energy.kwh == pytest.approx((100 + 240 + 466 * 60) / 1000)
    assert april.cost == Decimal("2.830")

    team = selectors.cost_report(user=admin_user, months=2, now=NOW)
    assert [r.username for r in team.rows] == ["mia", "sam", "mia"]
    assert team.api_totals[gpt5] == Decimal("10.5") + Decimal("0.3") + Decimal("18")
    # The rate runs from the first request (March 15th): 36.5 days.
    assert team.days == pytest.approx(36.5)
    price, gpt5_even = team.break_even[gpt5]
    assert price.name == "GPT-5"
    assert gpt5_even == cost.break_even(api_total=Decimal("28.8"), electricity_total=Decimal("2.830"), days=36.5,
                                        hardware_cost=Decimal(4500))


# -- the page --------------------------------------------------------------------------------------

@pytest.fixture
def client_of(client):
    """A logged-in test client, on April 20th 2026 like the ledger fixture."""
    import time_machine

    def login(user):
        client.force_login(user)
        return client

    with time_machine.travel(NOW, tick=False):
        yield login


def test_members_see_their_own_cost_and_the_field_notes_defaults(ledger, member_user, client_of):
    page = client_of(member_user).get("/usage/cost/?months=12")
    assert page.status_code == 200
    html = page.content.decode()
    assert "mia" in html and ">sam<" not in html
    for name, prices in (("GPT-4o mini", ("0.15", "0.6")), ("GPT-5", ("3", "15")),
                         ("Claude Sonnet 4.6", ("3", "15")), ("Claude Opus 4.7", ("15", "75"))):
        assert f"<td>{name}</td><td>{prices[0]}</td><td>{prices[1]}</td>" in html
    assert "240 W while requests run" in html and "60 W otherwise" in html and "$0.1 per kWh" in html
    assert "an admin sees it here" in html and 'id="cost-break-even"' not in html


def test_members_cannot_change_prices_or_settings(ledger, member_user, client_of):
    from gateway.models import ApiPrice

    client = client_of(member_user)
    client.get("/usage/cost/")
    price = ApiPrice.objects.get(name="GPT-5")
    data = {"name": "GPT-5", "input_per_million": "0", "output_per_million": "0"}
    assert client.post(f"/usage/cost/prices/{price.pk}/", data).status_code == 403
    assert client.post("/usage/cost/prices/", {**data, "name": "Free"}).status_code == 403
    assert client.post(f"/usage/cost/prices/{price.pk}/delete/").status_code == 403
    assert client.post("/usage/cost/settings/", {"electricity_per_kwh": "1", "hardware_cost": "1",
                                                 "load_watts": "1", "idle_watts": "1"}).status_code == 403
    assert ApiPrice.objects.get(pk=price.pk).input_per_million == Decimal(3)


def test_admins_see_everyone_and_the_break_even(ledger, admin_user, client_of):
    html = client_of(admin_user).get("/usage/cost/?months=2").content.decode()
    assert "<td>mia</td>" in html and "<td>sam</td>" in html
    assert 'id="cost-break-even"' in html and "Break-even of $4,500.00 of hardware" in html
    assert "<td>$10.50</td>" in html and "<th>$28.80</th>" in html  # mia's April and the total on GPT-5
    assert "<td>28.300 kWh</td><td>0.2 %</td><td>$2.83</td>" in html
    assert "<td>-$1.35</td>" in html and "never at this usage" in html  # GPT-4o mini is cheaper than the power


def test_price_edits_are_validated_and_audited(ledger, admin_user, client_of):
    from accounts.models import AuditEvent
    from gateway.models import ApiPrice

    client = client_of(admin_user)
    client.get("/usage/cost/")
    gpt5 = ApiPrice.objects.get(name="GPT-5")

    bad = client.post(f"/usage/cost/prices/{gpt5.pk}/", {"name": "GPT-5", "input_per_million": "-1",
                                                          "output_per_million": "ten"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "Input price (USD per 1M tokens): Enter 0 or more." in text
    assert "Output price (USD per 1M tokens): Enter a number." in text
    taken = client.post(f"/usage/cost/prices/{gpt5.pk}/", {"name": "Claude Opus 4.7", "input_per_million": "1",
                                                            "output_per_million": "2"})
    assert taken.status_code == 400 and "There is already a price with this name: edit that row." in \
        taken.content.decode()

    assert client.post(f"/usage/cost/prices/{gpt5.pk}/", {"name": "GPT-5", "input_per_million": "1.25",
                                                           "output_per_million": "10"}).status_code == 302
    changed = AuditEvent.objects.get(action="gateway.api_price.changed")
    assert changed.actor == admin_user and changed.details == {
        "old": {"name": "GPT-5", "input_per_million": "3.0000", "output_per_million": "15.0000",
                "cached_input_per_million": "0.3000"},
        "new": {"name": "GPT-5", "input_per_million": "1.25", "output_per_million": "10",
                "cached_input_per_million": None}}
    assert client.post("/usage/cost/prices/", {"name": "Gemini", "input_per_million": "1",
                                               "output_per_million": "5"}).status_code == 302
    assert AuditEvent.objects.filter(action="gateway.api_price.created", details__new__name="Gemini").exists()
    assert client.post(f"/usage/cost/prices/{gpt5.pk}/delete/").status_code == 302
    assert AuditEvent.objects.filter(action="gateway.api_price.deleted", details__old__name="GPT-5").exists()
    html = client.get("/usage/cost/").content.decode()
    assert 'value="Gemini"' in html and 'value="GPT-5"' not in html


def test_cost_settings_are_validated_and_audited(ledger, admin_user, client_of):
    from accounts.models import AuditEvent
    from gateway.models import CostSettings

    client = client_of(admin_user)
    swapped = client.post("/usage/cost/settings/", {"electricity_per_kwh": "0.30", "hardware_cost": "5000",
                                                    "load_watts": "60", "idle_watts": "240"})
    assert swapped.status_code == 400 and "Watts at idle (240) exceed watts under load (60): swap them." in \
        swapped.content.decode()
    assert client.post("/usage/cost/settings/", {"electricity_per_kwh": "0.30", "hardware_cost": "5000",
                                                 "load_watts": "250", "idle_watts": "50"}).status_code == 302
    row = CostSettings.objects.get()
    assert (row.electricity_per_kwh, row.hardware_cost, row.load_watts, row.idle_watts) == (
        Decimal("0.30"), Decimal("5000"), 250, 50)
    event = AuditEvent.objects.get(action="gateway.cost_settings.changed")
    assert event.details["old"]["electricity_per_kwh"] == "0.1000" and event.details["new"]["load_watts"] == "250"
    html = client.get("/usage/cost/").content.decode()
    assert "250 W while requests run" in html and "Break-even of $5,000.00 of hardware" in html
