import pytest

from classifier import services
from classifier.models import TaxonomyNode
from classifier.taxonomy import yaml_import
from sparkportal.exceptions import ValidationFailed

EXPLICIT = """
nodes:
  - code: "10"
    name: Finance
    description: money in and out
    children:
      - code: "10.06"
        name: Expenses
        keywords: [receipt, bill]
        children:
          - {code: "10.06.03", name: Food, description: "grocery receipts, restaurant bills"}
"""

COMPACT = """
10 Finance:
  description: money in and out
  10.06 Expenses:
    keywords: receipt, bill
    10.06.03 Food: grocery receipts, restaurant bills
"""


def _shape(nodes):
    return [(n.code, n.name, n.description, n.keywords, n.parent_code) for n in nodes]


def test_both_shapes_read_the_same_tree():
    assert _shape(yaml_import.parse(COMPACT)) == _shape(yaml_import.parse(EXPLICIT)) == [
        ("10", "Finance", "money in and out", [], None),
        ("10.06", "Expenses", "", ["receipt", "bill"], "10"),
        ("10.06.03", "Food", "grocery receipts, restaurant bills", [], "10.06"),
    ]


def test_it_imports_the_test_taxonomy_with_three_levels(jd_version):
    nodes = TaxonomyNode.objects.filter(version=jd_version)
    assert nodes.filter(depth=1).count() == 10
    assert nodes.filter(depth=1).order_by("position").first().name == "Finance"
    assert nodes.filter(depth=1).order_by("position").last().name == "Woodcarving"
    food = nodes.get(code="10.02.01")
    assert food.label_path == "Finance / Expenses / Food"
    assert food.flat_text() == ("Finance / Expenses / Food — grocery receipts, supermarket, restaurant "
                                "and cafe bills")


@pytest.mark.parametrize("text, message", [
    ("10 Finance:\n  10.01 Banking: [unclosed\n", "line 2"),
    ("10 Finance:\n  10.01 Banking: a\n  10.01 Banking: b\n",
     "line 3: duplicate key '10.01 Banking' (first on line 2)"),
    ("10 Finance:\n  10.01 Banking: a\n10 Money: b\n", "line 3: duplicate code 10 (first on line 1)"),
    ("10 Finance:\n  11.01 Banking: a\n", "line 2: code 11.01 cannot sit under 10"),
    ("Finance:\n  description: x\n", "line 1: key 'Finance' must look like '<code> <name>'"),
    ("10 Finance:\n  10.1 Banking: x\n", "line 2: code '10.1' is not Johnny-Decimal"),
    ("10 Finance:\n  10.01 Banking:\n    10.01.01 A:\n      10.01.01.01 B: x\n",
     "line 4: code 10.01.01.01 is 4 levels deep; at most 3"),
    ("- {code: '10', name: A, parent: '20'}\n- {code: '20', name: B, parent: '10'}\n", "cycle in parents"),
    ("", "the taxonomy file is empty"),
    ("- {code: '10'}\n", "line 1: a node needs both `code` and `name`"),
])
def test_bad_yaml_is_refused_with_the_line_or_code(text, message):
    with pytest.raises(ValidationFailed) as exc:
        yaml_import.parse(text)
    assert message in exc.value.message


def test_a_too_large_file_is_refused():
    with pytest.raises(ValidationFailed, match="larger than 2 MB"):
        yaml_import.parse("# " + "x" * (3 * 1024 * 1024))


def test_reimporting_makes_the_next_version_and_audits(jd_version, member_user, jd_yaml):
    from accounts.models import AuditEvent

    second = services.taxonomy_import(actor=member_user, name="jd", yaml_text=jd_yaml)
    assert (jd_version.number, second.number) == (1, 2)
    assert AuditEvent.objects.filter(action="classifier.taxonomy.imported").count() == 2


def test_editing_a_node_creates_a_version_and_keeps_the_old_one(jd_version, member_user):
    food = jd_version.nodes.get(code="10.02.01")
    new = services.taxonomy_node_update(actor=member_user, node=food, name="Groceries", description="food shops")
    assert new.version.number == 2
    assert new.label_path == "Finance / Expenses / Groceries"
    assert new.version.nodes.count() == jd_version.nodes.count()
    assert jd_version.nodes.get(code="10.02.01").name == "Food"
    with pytest.raises(ValidationFailed, match="A label cannot be empty"):
        services.taxonomy_node_update(actor=member_user, node=new, name="  ")
