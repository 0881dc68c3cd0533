"""Read a Johnny-Decimal taxonomy from YAML, in either of the two shapes the docs show.

Compact (written by hand): each key is "<code> <name>", its value a description string or a
mapping of child keys plus the reserved keys `description`, `keywords` and `examples`:

    10 Finance:
      description: money in and out
      10.06 Expenses:
        10.06.03 Food:
          description: grocery receipts, restaurant bills
          examples: ["SuperMart receipt: milk, bread, eggs. Total 10.50 EUR"]

Explicit: a list of nodes with `code`, `name`, `description`, `keywords`, `examples`, `children`
(optionally under a top-level `nodes:` key; a node may instead name its `parent` by code).

Errors name the line and the code, so a person can fix the file.

Before any tree is built, libyaml's event stream is read once (linear in the file's size) and the file is
refused if it uses an alias (`*name`: a taxonomy never needs one, and a few nested aliases expand into
billions of nodes, or into a loop as in `a: &a [*a]`), nests deeper than MAX_YAML_DEPTH or holds more than
MAX_YAML_NODES values. So every later walk of the tree is bounded by the file's own size.
"""
import re
from dataclasses import dataclass, field

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sparkportal.exceptions import PayloadTooLarge, ValidationFailed

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 5000
# A taxonomy nests about 10 levels (explicit shape: list, node, children, ...); 5000 nodes with
# descriptions, keywords and examples stay well under 200,000 values.
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 200_000
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DEPTH = 3
CODE_RE = re.compile(r"^\d{2}(\.\d{2}){0,2}$")
KEY_RE = re.compile(r"^\s*(\d[\d.]*)\s+(\S.*?)\s*$")
RESERVED = {"description", "keywords", "examples"}
MAX_EXAMPLE_CHARS = 4096


@dataclass
class ParsedNode:
    code: str
    name: str
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    parent_code: str | None = None
    line: int = 0


class TaxonomyError(ValidationFailed):
    code = "invalid_taxonomy"


def _fail(node: Node | None, message: str):
    _fail_at(node.start_mark if node is not None else None, message)


def _fail_at(mark: Mark | None, message: str):
    where = f"line {mark.line + 1}: " if mark is not None else ""
    raise TaxonomyError(where + message)


def _events_check(text: str) -> None:
    """Refuse aliases, deep nesting and too many values while reading events, before composing a tree."""
    depth = values = 0
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, yaml.AliasEvent):
            _fail_at(event.start_mark, f"the alias *{event.anchor} is not allowed in a taxonomy: write the value "
                                       "out where it is used (anchors and aliases are refused).")
        if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            values += 1
            if values > MAX_YAML_NODES:
                _fail_at(event.start_mark, f"the file holds more than {MAX_YAML_NODES} values: split it or trim it.")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                _fail_at(event.start_mark, f"nested more than {MAX_YAML_DEPTH} levels deep: a taxonomy needs far "
                                           "fewer; check the indentation and brackets.")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def decode(raw: bytes, *, name: str = "the taxonomy file") -> str:
    """UTF-8 (a byte-order mark is dropped); anything else is refused with the line it breaks on."""
    if len(raw) > MAX_BYTES:
        raise too_large()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise TaxonomyError(f"{name} line {line}: not UTF-8 (byte {raw[exc.start]:#04x}); save it as UTF-8.",
                            code="invalid_encoding") from None


def read_upload(fh, *, name: str) -> str:
    """An uploaded taxonomy file, read in chunks and refused as soon as it passes MAX_BYTES."""
    chunks, size = [], 0
    for chunk in fh.chunks() if hasattr(fh, "chunks") else iter(lambda: fh.read(1 << 16), b""):
        size += len(chunk)
        if size > MAX_BYTES:
            raise too_large()
        chunks.append(chunk)
    return decode(b"".join(chunks), name=name)


def too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the taxonomy file is larger than {MAX_BYTES // 1024 // 1024} MB; split it or trim it.")


def _scalar(node: Node, what: str) -> str:
    if not isinstance(node, ScalarNode):
        _fail(node, f"{what} must be text, not a {'list' if isinstance(node, SequenceNode) else 'mapping'}.")
    return str(node.value).strip()


def _keywords(node: Node) -> list[str]:
    if isinstance(node, ScalarNode):
        return [k.strip() for k in str(node.value).split(",") if k.strip()]
    if isinstance(node, SequenceNode):
        return [_scalar(item, "a keyword") for item in node.value]
    _fail(node, "keywords must be a list or a comma-separated string.")
    return []


def _examples(node: Node, code: str) -> list[str]:
    """A list of texts (or one text): documents known to belong to the node."""
    items = node.value if isinstance(node, SequenceNode) else [node]
    out = []
    for item in items:
        text = _scalar(item, f"an example of {code}")
        if not text or item.tag.endswith(":null"):
            _fail(item, f"an example of {code} is empty: write the example's text or remove the entry.")
        out.append(text[:MAX_EXAMPLE_CHARS])
    return out


def _check_code(node: Node, code: str, parent: str | None) -> None:
    if re.match(r"^\d{2}(\.\d{2}){3,}$", code):
        _fail(node, f"code {code} is {code.count('.') + 1} levels deep; at most {MAX_DEPTH} are allowed.")
    if not CODE_RE.match(code):
        _fail(node, f"code {code!r} is not Johnny-Decimal: write 10, 10.06 or 10.06.03.")
    depth = code.count(".") + 1
    if parent is None and depth != 1:
        _fail(node, f"code {code} is at level {depth} but has no parent: put it under its "
                    f"{code.rsplit('.', 1)[0]} area.")
    if parent is not None and not (code.startswith(parent + ".") and depth == parent.count(".") + 2):
        _fail(node, f"code {code} cannot sit under {parent}: a child's code is its parent's plus '.NN' "
                    f"(e.g. {parent}.01).")


def _compact(mapping: MappingNode, parent: str | None, out: list[ParsedNode]) -> None:
    for key_node, value_node in mapping.value:
        key = _scalar(key_node, "a key")
        if key in RESERVED:
            if parent is None:
                _fail(key_node, f"{key!r} must belong to a node: indent it under a '<code> <name>' key.")
            continue
        match = KEY_RE.match(key)
        if not match:
            _fail(key_node, f"key {key!r} must look like '<code> <name>', e.g. '10.06 Expenses'.")
        code, name = match.groups()
        _check_code(key_node, code, parent)
        item = ParsedNode(code=code, name=name, parent_code=parent, line=key_node.start_mark.line + 1)
        out.append(item)
        if isinstance(value_node, ScalarNode):
            item.description = "" if value_node.tag.endswith(":null") else str(value_node.value).strip()
        elif isinstance(value_node, MappingNode):
            for k, v in value_node.value:
                if isinstance(k, ScalarNode) and k.value == "description":
                    item.description = _scalar(v, "description")
                elif isinstance(k, ScalarNode) and k.value == "keywords":
                    item.keywords = _keywords(v)
                elif isinstance(k, ScalarNode) and k.value == "examples":
                    item.examples = _examples(v, code)
            _compact(value_node, code, out)
        else:
            _fail(value_node, f"{code} {name}: the value must be a description or a mapping of children.")


def _explicit(seq: SequenceNode, parent: str | None, out: list[ParsedNode]) -> None:
    for item_node in seq.value:
        if not isinstance(item_node, MappingNode):
            _fail(item_node, "each node in the list must be a mapping with code and name.")
        fields = {_scalar(k, "a key"): v for k, v in item_node.value}
        unknown = set(fields) - {"code", "name", "description", "keywords", "examples", "children", "parent"}
        if unknown:
            _fail(item_node, f"unknown field(s) {', '.join(sorted(unknown))}: a node has code, name, description, "
                             "keywords, examples, children (or parent).")
        if "code" not in fields or "name" not in fields:
            _fail(item_node, "a node needs both `code` and `name`.")
        code = _scalar(fields["code"], "code")
        own_parent = _scalar(fields["parent"], "parent") if "parent" in fields else parent
        if parent is not None and "parent" in fields and own_parent != parent:
            _fail(fields["parent"], f"{code} is listed under {parent} but names {own_parent} as parent.")
        item = ParsedNode(code=code, name=_scalar(fields["name"], "name"), parent_code=own_parent,
                          description=_scalar(fields["description"], "description") if "description" in fields else "",
                          keywords=_keywords(fields["keywords"]) if "keywords" in fields else [],
                          examples=_examples(fields["examples"], code) if "examples" in fields else [],
                          line=item_node.start_mark.line + 1)
        if not CODE_RE.match(code):
            _fail(fields["code"], f"code {code!r} is not Johnny-Decimal: write 10, 10.06 or 10.06.03.")
        out.append(item)
        if "children" in fields:
            children = fields["children"]
            if not isinstance(children, SequenceNode):
                _fail(children, f"children of {code} must be a list of nodes.")
            _explicit(children, code, out)


def _duplicate_keys(node: Node) -> None:
    """PyYAML keeps the last of two equal keys silently; a taxonomy must not lose a branch that way."""
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            if isinstance(k, ScalarNode):
                if k.value in seen:
                    _fail(k, f"duplicate key {k.value!r} (first on line {seen[k.value]}).")
                seen[k.value] = k.start_mark.line + 1
            _duplicate_keys(v)
    elif isinstance(node, SequenceNode):
        for v in node.value:
            _duplicate_keys(v)


def _check_tree(nodes: list[ParsedNode]) -> None:
    by_code: dict[str, ParsedNode] = {}
    for n in nodes:
        if n.code in by_code:
            raise TaxonomyError(f"line {n.line}: duplicate code {n.code} (first on line {by_code[n.code].line}).")
        by_code[n.code] = n
    for n in nodes:
        if n.parent_code is not None and n.parent_code not in by_code:
            raise TaxonomyError(f"line {n.line}: {n.code} names parent {n.parent_code}, which is not in the file.")
    for n in nodes:  # a `parent:` chain that comes back to itself
        seen, cur = {n.code}, n
        while cur.parent_code is not None:
            if cur.parent_code in seen:
                raise TaxonomyError(f"line {n.line}: cycle in parents: {' -> '.join([*seen, cur.parent_code])}.")
            seen.add(cur.parent_code)
            cur = by_code[cur.parent_code]
        if len(seen) > MAX_DEPTH:
            raise TaxonomyError(f"line {n.line}: {n.code} is {len(seen)} levels deep; at most {MAX_DEPTH} are allowed.")
    for n in nodes:
        parent = n.parent_code
        depth = n.code.count(".") + 1
        if parent is None and depth != 1:
            raise TaxonomyError(f"line {n.line}: code {n.code} is at level {depth} but has no parent.")
        if parent is not None and not (n.code.startswith(parent + ".") and depth == parent.count(".") + 2):
            raise TaxonomyError(f"line {n.line}: code {n.code} cannot sit under {parent}: a child's code is its "
                                f"parent's plus '.NN'.")


def parse(text: str) -> list[ParsedNode]:
    """Parse either shape into nodes, parents before children. Raises TaxonomyError."""
    if len(text.encode()) > MAX_BYTES:
        raise too_large()
    try:
        _events_check(text)
        root = yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        started = f"; {exc.context} that started on line {context.line + 1}" if context and exc.context else ""
        raise TaxonomyError(f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc}{started}).") from None
    if root is None:
        raise TaxonomyError("the taxonomy file is empty.")
    _duplicate_keys(root)
    nodes: list[ParsedNode] = []
    if isinstance(root, MappingNode) and len(root.value) == 1 and root.value[0][0].value == "nodes":
        root = root.value[0][1]
    if isinstance(root, SequenceNode):
        _explicit(root, None, nodes)
    elif isinstance(root, MappingNode):
        _compact(root, None, nodes)
    else:
        _fail(root, "a taxonomy is a mapping of '<code> <name>' keys or a list of nodes.")
    if not nodes:
        raise TaxonomyError("the taxonomy has no nodes.")
    if len(nodes) > MAX_NODES:
        raise TaxonomyError(f"the taxonomy has {len(nodes)} nodes; at most {MAX_NODES} are allowed.")
    _check_tree(nodes)
    order = {n.code: i for i, n in enumerate(nodes)}
    return sorted(nodes, key=lambda n: (n.code.count("."), order[n.code]))
