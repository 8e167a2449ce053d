"""The user documentation (docs/sp-invoices.md) agrees with the code.

- every spec field is in the setup guide, by key and by title;
- every stream is in the supported streams table with its primary key, cursor and sync modes;
- the latest changelog entry is the package's version;
- every message quoted in Troubleshooting is one the connector (or the Airbyte CDK) really
  gives, and every error message of the connector is quoted there. The connector's messages
  are read from its own source; the CDK's are taken from what it says in a real failing read
  (never from the CDK's files, whose layout is the CDK's business);
- the icon is an SVG.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ElementTree
from functools import cache
from pathlib import Path

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read

from source_sp_invoices import settings
from source_sp_invoices.config import load_spec
from source_sp_invoices.source import SourceSpInvoices
from unit_tests.conftest import API_URL, make_config

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "sp-invoices.md"
ICON = ROOT / "icon.svg"  # where Airbyte looks for it: the connector's root
PACKAGE = ROOT / "source_sp_invoices"
CONNECTOR = "Amazon SP-API Invoices (Brazil NF-e)"  # metadata.yaml's name, in Airbyte's headings

HOLE = "\x00"  # where an f-string or a concatenation inserts a value
PLACEHOLDER = re.compile(r"<[^<>]+>")  # how the docs mark the parts of a message that change
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
# Callees whose first argument (or message=/error_message=) is text a user reads.
MESSAGE_CALLEE = re.compile(
    r"(Error|Exception|Failed|Unreadable|Document|Entry|BadZipFile|warning)$"
)
NOT_FOR_USERS = {"TypeError", "KeyError", "AssertionError", "NotImplementedError"}
# Functions whose returned text is a check's or the config's message.
MESSAGE_FUNCTIONS = {"check_connection", "_check_message", "_schema_problems", "_schema_problem"}
SIGNIFICANT = 8  # literal parts of a message at least this long must be in the docs


# --- reading the docs -------------------------------------------------------------------------


def section(title: str, level: int = 2) -> str:
    """The text of one section of the docs, up to the next heading of the same level."""
    text = DOC.read_text("utf-8")
    marks = "#" * level
    match = re.search(rf"^{marks} {re.escape(title)}\n(.*?)(?=^{marks} |\Z)", text, re.M | re.S)
    assert match, f"{DOC.name} has no section '{marks} {title}'"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table body row in the text (header and separator rows left out)."""
    rows = []
    lines = [line.strip() for line in text.splitlines()]
    for index, line in enumerate(lines):
        if not line.startswith("|") or set(line) <= set("|:- "):
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if following.startswith("|") and set(following) <= set("|:- "):
            continue  # a header row
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def code_spans(text: str) -> list[str]:
    """The contents of the Markdown code spans in the text (`x` or `` x ``)."""
    spans = []
    for match in CODE_SPAN.finditer(text):
        content = match.group(2)
        if content.startswith(" ") and content.endswith(" ") and content.strip():
            content = content[1:-1]
        spans.append(content)
    return spans


def quoted_messages() -> list[str]:
    """The message column of every Troubleshooting table: what users will search for."""
    quotes = []
    for row in table_rows(section("Troubleshooting", level=3)):
        spans = code_spans(row[0])
        assert len(spans) == 1, f"a Troubleshooting row must quote one message: {row[0]}"
        quotes.append(spans[0])
    return quotes


# --- reading the code -------------------------------------------------------------------------


def _text(node: ast.AST | None, scope: dict[str, ast.AST]) -> str | None:
    """A string expression as text, HOLE where a value is inserted; None if it is not text.

    Values that are fixed (a constant of the module, a number of `settings`) are written in, so
    that "after {TOKEN_ATTEMPTS} attempts" reads "after 4 attempts", as users see it.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_fixed(part, scope) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, scope), _text(node.right, scope)
        if left is None and right is None:
            return None
        return (left if left is not None else HOLE) + (right if right is not None else HOLE)
    if isinstance(node, ast.Name) and node.id in scope:
        return _text(scope[node.id], scope)
    return None


def _fixed(part: ast.AST, scope: dict[str, ast.AST]) -> str:
    """One part of an f-string: its text, the value of a fixed constant, or HOLE."""
    if isinstance(part, ast.Constant):
        return str(part.value)
    value = part.value if isinstance(part, ast.FormattedValue) else None
    if part.conversion == -1 and not part.format_spec:  # type: ignore[union-attr]
        if isinstance(value, ast.Attribute) and getattr(value.value, "id", None) == "settings":
            return str(getattr(settings, value.attr))
        constant = isinstance(value, ast.Name) and value.id.isupper()
        fixed = scope.get(value.id) if constant else None  # type: ignore[union-attr]
        if isinstance(fixed, ast.Constant) and type(fixed.value) in (int, str):
            return str(fixed.value)
    return HOLE


def _assigned(owner: ast.AST) -> dict[str, ast.AST]:
    """name -> value of the plain assignments in a module or function."""
    found: dict[str, ast.AST] = {}
    for node in ast.walk(owner):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                found.setdefault(target.id, node.value)
    return found


def _callee(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _message_nodes(function: ast.AST) -> list[ast.AST]:
    """The expressions of one function (or module) that become a message to the user."""
    nodes: list[ast.AST] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            name = _callee(node.func)
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            problem = name == "append" and getattr(owner, "id", None) == "problems"
            if problem or (MESSAGE_CALLEE.search(name) and name not in NOT_FOR_USERS):
                nodes += node.args[:1]
            nodes += [k.value for k in node.keywords if k.arg in ("message", "error_message")]
        elif (
            isinstance(node, ast.Return)
            and isinstance(function, ast.FunctionDef)
            and function.name in MESSAGE_FUNCTIONS
            and node.value is not None
        ):
            value = node.value
            nodes += value.elts if isinstance(value, (ast.Tuple, ast.List)) else [value]
    return nodes


def messages_of(path: Path) -> list[str]:
    """Every message a module gives its users: errors, config problems, warnings, check results."""
    tree = ast.parse(path.read_text("utf-8"))
    module = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    found: list[str] = []
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    for function in functions:
        scope = {**module, **_assigned(function)}
        for node in _message_nodes(function):
            text = _text(node, scope)
            if text and text.replace(HOLE, "").strip():
                found.append(text)
    # Tables of messages, such as what each LWA error code means.
    for name, value in module.items():
        if name.isupper() and isinstance(value, ast.Dict):
            found += [t for t in (_text(v, module) for v in value.values) if t and " " in t]
    return list(dict.fromkeys(found))


def connector_messages() -> list[str]:
    return [m for path in sorted(PACKAGE.rglob("*.py")) for m in messages_of(path)]


@cache
def code_texts() -> frozenset[str]:
    """The literal texts of the connector's package, with fixed constants written into its
    f-strings."""
    texts: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        module = _assigned(tree)
        parts = {id(p) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for p in n.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                texts.update(_text(node, module).split(HOLE))  # type: ignore[union-attr]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.update([node.value] if id(node) not in parts else [])
    texts.discard("")
    return frozenset(texts)


def from_the_code(fragment: str, texts: frozenset[str]) -> bool:
    """Whether the code can produce this text: it lies inside one literal, or it is the end of
    one literal, whole literals, then the start of another (a message composed of several
    parts, such as an f-string holding another message)."""
    if any(fragment in text for text in texts):
        return True

    @cache
    def rest_composed(rest: str) -> bool:
        if not rest or any(text.startswith(rest) for text in texts):
            return True
        return any(rest.startswith(t) and rest_composed(rest[len(t) :]) for t in texts)

    return any(
        any(text.endswith(fragment[:cut]) for text in texts) and rest_composed(fragment[cut:])
        for cut in range(len(fragment) - 1, 0, -1)
    )


def quote_is_real(quote: str, given: frozenset[str] = frozenset()) -> bool:
    """Every part of a quoted message between placeholders comes from the code, or from
    messages `given` at run time."""
    texts = code_texts() | given
    return all(from_the_code(part, texts) for part in PLACEHOLDER.split(quote) if part)


@pytest.fixture
def cdk_messages(lwa, requests_mock, config) -> frozenset[str]:
    """What the Airbyte CDK itself says to users of this connector, heard in a real read: a
    request that keeps failing ends in the CDK's "Exhausted available request attempts" error,
    and the sync in its summary of the streams that failed."""
    requests_mock.get(
        f"{API_URL}/invoices",
        status_code=503,
        json={"errors": [{"code": "ServiceUnavailable", "message": "Try later."}]},
    )
    catalog = CatalogBuilder().with_stream("invoices", SyncMode.full_refresh).build()
    output = read(SourceSpInvoices(), config, catalog, expecting_exception=True)
    messages = frozenset(error.trace.error.message for error in output.errors)
    assert len(messages) == 2, messages  # the stream's error, then the sync's summary
    return messages


# --- the tests --------------------------------------------------------------------------------


def test_every_spec_field_is_in_the_setup_guide_with_its_key_and_title():
    guide = section("Setup guide")
    properties = load_spec()["connectionSpecification"]["properties"]
    missing = [
        f"{key} ({spec['title']})"
        for key, spec in properties.items()
        if f"`{key}`" not in guide or f"**{spec['title']}**" not in guide
    ]
    assert not missing, f"spec fields missing from the setup guide: {missing}"


def test_every_required_field_is_listed_as_required():
    required = load_spec()["connectionSpecification"]["required"]
    step = section(f"Step 2: Set up the {CONNECTOR} connector in Airbyte", level=3)
    listed = step.split("Fill in the required fields:")[1].split("Check the optional fields")[0]
    assert set(re.findall(r"\*\* \(`(\w+)`\)", listed)) == set(required)


def test_every_stream_is_in_the_streams_table_with_its_key_cursor_and_modes():
    streams = SourceSpInvoices().streams(make_config())
    rows = {code_spans(row[0])[0]: row for row in table_rows(section("Supported Streams")) if row}
    assert set(rows) == {stream.name for stream in streams}
    for stream in streams:
        _, _, modes, key, cursor = rows[stream.name]
        primary_key = [stream.primary_key] if isinstance(stream.primary_key, str) else []
        primary_key = primary_key or list(stream.primary_key or [])
        assert code_spans(key) == primary_key, stream.name
        assert code_spans(cursor) == ([stream.cursor_field] if stream.cursor_field else [])
        assert ("Incremental" in modes) == stream.supports_incremental, stream.name
        assert "Full Refresh" in modes, stream.name


def test_the_latest_changelog_entry_is_the_packages_version():
    setup = ast.parse((ROOT / "setup.py").read_text("utf-8"))
    version = next(
        node.value.value
        for node in setup.body
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", None) == "VERSION"
        and isinstance(node.value, ast.Constant)
    )
    rows = table_rows(section("Changelog"))
    assert rows, "the changelog has no entry"
    latest = rows[0]
    assert latest[0] == version
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", latest[1]), latest[1]
    dates = [row[1] for row in rows]
    assert dates == sorted(dates, reverse=True), "the newest entry comes first"


# The headings Airbyte's documentation template puts in this order (make qa runs Airbyte's own
# check of them; this keeps make test from drifting between two runs of it).
TEMPLATE_ORDER = [
    f"# {CONNECTOR}",
    "## Prerequisites",
    "## Setup guide",
    f"### Step 1: Set up {CONNECTOR}",
    f"### Step 2: Set up the {CONNECTOR} connector in Airbyte",
    "#### For Airbyte Cloud:",
    "#### For Airbyte Open Source:",
    "## Supported sync modes",
    "## Supported Streams",
    "## IP allow list",
    "## Performance considerations",
    "## Data type map",
    "## Limitations & Troubleshooting",
    "### Tutorials",
    "## Changelog",
]


def headings() -> list[str]:
    """The Markdown headings of the docs, those inside fenced code blocks left out."""
    found, fenced = [], False
    for line in DOC.read_text("utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.append(line)
    return found


def test_the_headings_follow_airbytes_template_and_the_metadata_name():
    headings_ = headings()
    assert [h for h in headings_ if h in TEMPLATE_ORDER] == TEMPLATE_ORDER
    metadata = (ROOT / "metadata.yaml").read_text("utf-8")
    assert f"  name: {CONNECTOR}\n" in metadata  # the checks name the headings after it
    assert headings_[-2] == "### Tutorials"  # nothing may stand between it and the changelog


def test_the_icon_is_a_small_svg():
    root = ElementTree.parse(ICON).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox")
    assert ICON.stat().st_size < 4096


def test_every_troubleshooting_message_is_given_by_the_code(cdk_messages):
    quotes = quoted_messages()
    assert len(quotes) > 30
    invented = [quote for quote in quotes if not quote_is_real(quote, cdk_messages)]
    assert not invented, f"messages the code does not give: {invented}"


@pytest.mark.parametrize(
    "quote",
    [
        "Exhausted available request attempts. Please see logs for more details. "
        "Exception: <error>",
        "During the sync, the following streams did not sync successfully: <stream>: <error>",
    ],
)
def test_the_cdks_messages_in_troubleshooting_are_what_it_says(quote, cdk_messages):
    assert quote in quoted_messages()
    assert not quote_is_real(quote)  # the connector's code does not say it
    assert quote_is_real(quote, cdk_messages)  # the CDK does, in a failing read


def test_every_message_of_the_connector_is_in_troubleshooting():
    troubleshooting = section("Troubleshooting", level=3)
    messages = connector_messages()
    assert len(messages) > 40, "the message collector found too little: is it broken?"
    missing = [
        message.replace(HOLE, "<...>")
        for message in messages
        for part in message.split(HOLE)
        if len(part.strip()) >= SIGNIFICANT and part.strip() not in troubleshooting
    ]
    assert not missing, f"messages missing from Troubleshooting: {sorted(set(missing))}"


# --- the checks above can fail ------------------------------------------------------------------


@pytest.mark.parametrize(
    "quote",
    [
        "Amazon could not export the invoices of <window> because the moon is full.",
        "`<field>` must be a local date like 01/02/2024.",
        "Login with Amazon rejected the credentials (invalid_grant): try turning it off.",
    ],
)
def test_an_invented_message_is_refused(quote):
    assert not quote_is_real(quote)


@pytest.mark.parametrize(
    "quote",
    [
        "Login with Amazon rejected the credentials (invalid_client): the client ID or secret is "
        "wrong: check `lwa_app_id` and `lwa_client_secret`.",
        "Document <document> could not be downloaded with 3 fresh URLs: <reason>",
    ],
)
def test_a_composed_message_is_recognised(quote):
    assert quote_is_real(quote)


def test_the_collector_finds_messages_of_each_kind():
    messages = connector_messages()
    for expected in (
        "Invalid configuration: " + HOLE,  # a ConfigError
        f"`{HOLE}` is empty: paste the value from your SP-API app.",  # a config problem
        "Login with Amazon answered without an access token.",  # an AirbyteTracedException
        "not an NF-e: NFe holds no infNFe element",  # an NF-e parse error
        f"Token request failed: {HOLE}; retrying (attempt {HOLE}).",  # a warning
        f"The request to {HOLE} failed: {HOLE}.",  # a check result
        "the config must be a JSON object.",  # a returned problem
    ):
        assert expected in messages, expected


def test_code_spans_with_backticks_inside_are_read_whole():
    assert code_spans("a `` `x` is missing. `` and `y`") == ["`x` is missing.", "y"]
