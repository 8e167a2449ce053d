"""NfeParser: NF-e 4.00 XML (nfeProc or a bare NFe) → ParsedNfe, a header and its items.

One walk over the tree: infNFe's children are dispatched to the field tables, each `det` to
the item reader, protNFe/infProt to the protocol's table. An NF-e event (procEventoNFe, a bare
evento, or an envEvento holding one) gives a header of event columns and no items.
Security: the lxml parser never expands entities, loads DTDs or touches the network, and a
document with a DOCTYPE is refused.
The byte-level helpers hand lxml bytes it reads fast and whose error positions stay right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from source_sp_invoices.nfe.convert import NfeError
from source_sp_invoices.nfe.fields import (
    DET_TAGS,
    EVENT,
    EVENT_DOCUMENT,
    EVENT_REGISTRATION,
    HEADER_TEMPLATE,
    INF_NFE,
    NFE_DOCUMENT,
    PROTOCOL,
    read_item,
)
from source_sp_invoices.nfe.spec import NAMESPACE, NS_PREFIX, fill

_DEFAULT_NAMESPACE = f' xmlns="{NAMESPACE}"'.encode()
_BLANK_NAMESPACE = b" " * len(_DEFAULT_NAMESPACE)
_DECLARATION = re.compile(r"<\?xml\s[^>]*\?>")
_NOT_NEWLINE = re.compile(r"[^\r\n]")
_ELEMENT_START = re.compile(rb"<[^?!]")
_DOCTYPE_REFUSED = "refused: the document has a DOCTYPE (DTDs and entities are not allowed)"
_POSITION_SUFFIX = re.compile(r",? line \d+, column \d+$")
_NFE_PROC = frozenset({NS_PREFIX + "nfeProc", "nfeProc"})
_NFE = frozenset({NS_PREFIX + "NFe", "NFe"})
_INFNFE = frozenset({NS_PREFIX + "infNFe", "infNFe"})
_PROT_NFE = frozenset({NS_PREFIX + "protNFe", "protNFe"})
_INF_PROT = frozenset({NS_PREFIX + "infProt", "infProt"})
_EVENT_PROC = frozenset({NS_PREFIX + "procEventoNFe", "procEventoNFe"})
_EVENT = frozenset({NS_PREFIX + "evento", "evento"})
_EVENT_REQUEST = frozenset({NS_PREFIX + "envEvento", "envEvento"})
_RET_EVENT = frozenset({NS_PREFIX + "retEvento", "retEvento"})
_INF_EVENT = frozenset({NS_PREFIX + "infEvento", "infEvento"})
_EVENT_ROOTS = _EVENT_PROC | _EVENT | _EVENT_REQUEST


@dataclass(frozen=True, slots=True)
class ParsedNfe:
    """One NF-e: the header columns and one record per item (`det`), in document order; or
    one NF-e event: the header's event columns, and no items."""

    header: dict[str, Any]
    items: list[dict[str, Any]]


def _access_key(info: Any, header: dict[str, Any]) -> str | None:
    """The 44 digits of infNFe/@Id ("NFe" + key), else the protocol's chNFe."""
    identifier = info.get("Id")
    if identifier:
        key = identifier[3:] if identifier.startswith("NFe") else identifier
        if len(key) == 44 and key.isascii() and key.isdigit():
            return key
    return header["protocolAccessKey"]


def _first(element: Any, tags: frozenset[str]) -> Any:
    for child in element:
        if child.tag in tags:
            return child
    return None


class _NothingResolver(etree.Resolver):
    """Answers any request to load an external resource (DTD, entity) with nothing."""

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        return self.resolve_string("", context)


class NfeParser:
    """Parse NF-e 4.00 files (nfeProc or a bare NFe) and NF-e events into header and items.

    One instance builds its hardened lxml parser once and can be reused for any number of
    files (not from several threads at once).
    """

    def __init__(self) -> None:
        # Not collect_ids=False: with it, lxml 6 reads a DOCTYPE's external subset from disk.
        self._parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            remove_pis=True,
        )
        self._parser.resolvers.add(_NothingResolver())

    def parse(self, xml: str | bytes) -> ParsedNfe:
        """Return the header and items of one NF-e XML (text or bytes), or the header of one
        NF-e event; NfeError if unreadable."""
        root = self._root(xml)
        tag = root.tag
        if tag in _EVENT_ROOTS:
            return _event(root)
        protocol = None
        if tag in _NFE_PROC:
            nfe, protocol = _unwrapped(root, _NFE, _PROT_NFE, "not an NF-e: nfeProc holds no NFe")
        elif tag in _NFE:
            nfe = root
        else:
            raise NfeError(f"not an NF-e: the root element is {_qualified(tag)}")
        info = _first(nfe, _INFNFE)
        if info is None:
            raise NfeError("not an NF-e: NFe holds no infNFe element")

        header = dict(HEADER_TEMPLATE)
        header["documentType"] = NFE_DOCUMENT
        items: list[dict[str, Any]] = []
        spec = INF_NFE
        for child in info:
            child_tag = child.tag
            if child_tag in DET_TAGS:
                read_item(child, items)
                continue
            entry = spec.get(child_tag)
            if entry is not None:
                fill(child, entry[2], header)
        if protocol is not None:
            info_prot = _first(protocol, _INF_PROT)
            if info_prot is not None:
                fill(info_prot, PROTOCOL, header)
        header["layoutVersion"] = info.get("versao")
        header["accessKey"] = _access_key(info, header)
        return ParsedNfe(header=header, items=items)

    def _root(self, xml: str | bytes) -> Any:
        """Parse the text into its root element, refusing DOCTYPEs; NfeError if not well-formed."""
        if isinstance(xml, str):
            data = _text_to_bytes(xml)
        elif isinstance(xml, bytes | bytearray | memoryview):
            data = bytes(xml)
        else:
            raise TypeError(f"NF-e XML must be str or bytes, not {type(xml).__name__}")
        doctype = data.find(b"<!DOCTYPE")
        if doctype >= 0 and _ELEMENT_START.search(data, 0, doctype) is None:
            # In the prolog: fail before lxml reads it (text later on may quote "<!DOCTYPE").
            raise NfeError(_DOCTYPE_REFUSED)
        data = _unqualify(data)
        try:
            root = etree.fromstring(data, self._parser)
        except etree.XMLSyntaxError as error:
            line, column = error.position
            message = _POSITION_SUFFIX.sub("", error.msg or "unreadable")
            raise NfeError(
                f"not well-formed XML at line {line}, column {column}: {message}"
            ) from None
        if root is None:
            raise NfeError("not well-formed XML: the document is empty")
        docinfo = root.getroottree().docinfo
        if docinfo.internalDTD is not None or docinfo.doctype:
            raise NfeError(_DOCTYPE_REFUSED)
        return root


def _unwrapped(root: Any, document: Any, receipt: Any, missing: str) -> tuple[Any, Any]:
    """The document and its receipt (None if absent) of a wrapper as the tax authority
    returns it: nfeProc (NFe, protNFe) or procEventoNFe (evento, retEvento)."""
    found, receipt_found = None, None
    for child in root:
        if child.tag in document:
            found = child
        elif child.tag in receipt:
            receipt_found = child
    if found is None:
        raise NfeError(f"{missing} element")
    return found, receipt_found


def _event(root: Any) -> ParsedNfe:
    """procEventoNFe (the event and its registration), a bare evento, or an envEvento holding
    one evento (a request to register it: no registration yet) → the event columns."""
    tag = root.tag
    registration = None
    if tag in _EVENT_PROC:
        what = "not an NF-e event: procEventoNFe holds no evento"
        event, registration = _unwrapped(root, _EVENT, _RET_EVENT, what)
    elif tag in _EVENT_REQUEST:
        events = [child for child in root if child.tag in _EVENT]
        if len(events) != 1:
            raise NfeError(
                f"envEvento holds {len(events)} evento elements: a record describes one event"
            )
        event = events[0]
    else:
        event = root
    info = _first(event, _INF_EVENT)
    if info is None:
        raise NfeError("not an NF-e event: evento holds no infEvento element")
    header = dict(HEADER_TEMPLATE)
    header["documentType"] = EVENT_DOCUMENT
    fill(info, EVENT, header)
    if registration is not None:
        registered = _first(registration, _INF_EVENT)
        if registered is not None:
            fill(registered, EVENT_REGISTRATION, header)
    return ParsedNfe(header=header, items=[])


def _text_to_bytes(xml: str) -> bytes:
    """Text as UTF-8 bytes for lxml, which refuses a str whose declaration names an encoding.

    The byte-order mark is dropped (lxml does not count one either) and the declaration blanked,
    same length and newlines kept, so error positions are those of the bytes; the text is
    already decoded, so its declared encoding is moot.
    """
    if xml.startswith("\ufeff"):
        xml = xml[1:]
    match = _DECLARATION.match(xml) if xml.startswith("<?xml") else None
    if match is not None:
        xml = _NOT_NEWLINE.sub(" ", match.group()) + xml[match.end() :]
    try:
        return xml.encode("utf-8")
    except UnicodeEncodeError as error:
        raise NfeError(
            f"not well-formed XML: character {error.object[error.start]!r} at offset "
            f"{error.start} cannot be encoded"
        ) from None


def _unqualify(data: bytes) -> bytes:
    """Blank the default NF-e namespace declarations of the elements before infNFe (nfeProc, NFe).

    lxml builds a tag string on every access, and "{namespace}name" costs about twice "name":
    reading unqualified elements makes the whole parse about 10 % faster. Only the prolog and
    the start tags before the first "<infNFe" are touched (no element text is there), the bytes
    are replaced by as many spaces so error positions stay right, and the specs accept both
    forms of every tag, so a document written differently reads the same.
    """
    end = data.find(b"<infNFe")
    if end < 0:
        return data
    head = data[:end]
    if _DEFAULT_NAMESPACE not in head:
        return data
    return head.replace(_DEFAULT_NAMESPACE, _BLANK_NAMESPACE) + data[end:]


def _qualified(tag: Any) -> str:
    if not isinstance(tag, str):
        return repr(tag)
    namespace, _, name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return f"<{name}> (namespace {namespace})" if namespace else f"<{name}> (no namespace)"
