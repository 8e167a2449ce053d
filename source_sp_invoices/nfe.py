"""NF-e 4.00 XML → typed records: one header record per invoice, one item record per `det`.

The header carries the invoice's identification, parties, totals (ICMSTot, the 2026 IBS/CBS
totals), transport, billing, payments and authorization protocol; its columns are added to the
`invoice_documents` stream. Items feed the `invoice_items` stream. Column names, types and NF-e
tag paths are documented in `schemas/nfe_header_properties.json` and `schemas/invoice_items.json`
(paths relative to infNFe; protNFe/... relative to nfeProc).

Values are exact. Decimals whose NF-e type has at most 15 significant digits (money TDec_1302,
quantities TDec_1104v, rates TDec_0302a04...) become floats whose shortest repr is the XML's
value; a value with more digits is refused (NfeError) rather than rounded. Decimals of types that
can exceed a double (unit values TDec_1110v, quantity bases TDec_1204v) stay decimal strings as
written. Codes (CFOP, NCM, CST, CNPJ, cStat...) and identifiers stay strings; dates stay the
XML's ISO text with its UTC offset. A missing group or an empty element gives null.

Parsing is one walk over the tree: each group maps its children's tags to (kind, column) in a
precompiled dict holding every tag with and without the NF-e namespace, so prefixed, default
and unqualified documents read alike, without XPath. The lxml parser never expands entities,
loads DTDs or touches the network, and a document with a DOCTYPE is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

__all__ = [
    "HEADER_COLUMNS",
    "INSTALLMENT_COLUMNS",
    "ITEM_COLUMNS",
    "NAMESPACE",
    "PAYMENT_COLUMNS",
    "VOLUME_COLUMNS",
    "NfeError",
    "NfeParser",
    "ParsedNfe",
]

NAMESPACE = "http://www.portalfiscal.inf.br/nfe"
_NS = "{" + NAMESPACE + "}"
_DEFAULT_NAMESPACE = f' xmlns="{NAMESPACE}"'.encode()
_BLANK_NAMESPACE = b" " * len(_DEFAULT_NAMESPACE)
_DECLARATION = re.compile(r"<\?xml\s[^>]*\?>")
_NOT_NEWLINE = re.compile(r"[^\r\n]")
_ELEMENT_START = re.compile(rb"<[^?!]")
_DOCTYPE_REFUSED = "refused: the document has a DOCTYPE (DTDs and entities are not allowed)"
_POSITION_SUFFIX = re.compile(r",? line \d+, column \d+$")
_DECIMAL = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*").fullmatch
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*").fullmatch
_MAX_FLOAT_DIGITS = 15  # every decimal of up to 15 significant digits round-trips via a double


class NfeError(Exception):
    """The XML is not a readable NF-e; the message says what is wrong and where."""


@dataclass(frozen=True, slots=True)
class ParsedNfe:
    """One NF-e: the header columns and one record per item (`det`), in document order."""

    header: dict[str, Any]
    items: list[dict[str, Any]]


# --- converters: text of an element → column value (ValueError when the text is invalid) -------


def _number(text: str) -> float:
    """A decimal as the float whose shortest repr is its value (at most 15 significant digits).

    A double holds any decimal of up to 15 significant digits so that repr() gives it back;
    a longer one (beyond the NF-e types of such fields) is refused instead of being rounded.
    """
    if _DECIMAL(text) is None:
        raise ValueError(f"{text!r} is not a decimal number")
    if len(text) > _MAX_FLOAT_DIGITS:  # may hold more significant digits than a double
        digits = text.strip().lstrip("+-").replace(".", "").strip("0")
        if len(digits) > _MAX_FLOAT_DIGITS:
            raise ValueError(
                f"{text!r} has {len(digits)} significant digits; at most "
                f"{_MAX_FLOAT_DIGITS} fit a JSON number exactly"
            )
    return float(text)


def _decimal_text(text: str) -> str:
    """A decimal kept as its text (checked, surrounding blanks removed)."""
    if _DECIMAL(text) is None:
        raise ValueError(f"{text!r} is not a decimal number")
    return text.strip()


def _integer(text: str) -> int:
    """An integer (ASCII digits only)."""
    if _INTEGER(text) is None:
        raise ValueError(f"{text!r} is not an integer")
    return int(text)


# --- field tables -------------------------------------------------------------------------------
#
# A spec maps a child's tag to (kind, column, payload):
#   TEXT     the text as it is (strings, codes, dates)
#   NUMBER   the text as an exact float (see _number)
#   CONVERT  payload(text): decimal strings, integers
#   GROUP    the children are read with the payload spec into the same record
#   HANDLER  payload(element, record): repeated groups, the ICMS group's name
# Every spec holds each tag twice: in the NF-e namespace and without one (a file whose prefixed
# root declares the namespace but whose children are unqualified still reads).

TEXT, NUMBER, CONVERT, GROUP, HANDLER = range(5)
DECIMAL_TEXT, INTEGER = _decimal_text, _integer
Entry = tuple[int, str | None, Any]
Spec = dict[Any, Entry]
_DIGITS = "0123456789."


def _spec(fields: Mapping[str, Any]) -> Spec:
    """Build a spec from {tag: column | (column, NUMBER | converter) | Spec | handler}."""
    spec: Spec = {}
    for tag, value in fields.items():
        if isinstance(value, str):
            entry: Entry = (TEXT, value, None)
        elif isinstance(value, tuple):
            column, how = value
            entry = (NUMBER, column, None) if how == NUMBER else (CONVERT, column, how)
        elif isinstance(value, dict):
            entry = (GROUP, None, value)
        else:
            entry = (HANDLER, None, value)
        spec[_NS + tag] = entry
        spec[tag] = entry
    return spec


def _columns(spec: Spec) -> list[str]:
    """Columns a spec fills, in table order (handlers' columns are listed separately)."""
    columns: list[str] = []
    for tag, (kind, column, payload) in spec.items():
        if tag.startswith("{"):
            continue
        if column is not None:
            columns.append(column)
        elif kind == GROUP:
            columns.extend(c for c in _columns(payload) if c not in columns)
    return columns


def _fill(element: Any, spec: Spec, record: dict[str, Any]) -> None:
    """Read element's children into record with spec (one pass; unknown tags skipped)."""
    for child in element:
        entry = spec.get(child.tag)
        if entry is None:
            continue
        kind, column, payload = entry
        if kind == TEXT:
            text = child.text
            if text is not None:
                record[column] = text
        elif kind == NUMBER:
            text = child.text
            if text is None:
                continue
            try:
                # Fast path: at most 15 characters, all digits or dots; float() rejects the rest.
                if len(text) <= _MAX_FLOAT_DIGITS and not text.strip(_DIGITS):
                    record[column] = float(text)
                else:
                    record[column] = _number(text)
            except ValueError as error:
                raise NfeError(f"{_where(child)}: {_reason(error, text)}") from None
        elif kind == GROUP:
            _fill(child, payload, record)
        elif kind == CONVERT:
            text = child.text
            if text is not None:
                try:
                    record[column] = payload(text)
                except ValueError as error:
                    raise NfeError(f"{_where(child)}: {_reason(error, text)}") from None
        else:
            payload(child, record)


def _reason(error: ValueError, text: str) -> str:
    """The converters' messages; float()'s own message is replaced by a plain one."""
    message = str(error)
    if message.startswith("could not convert"):
        return f"{text!r} is not a decimal number"
    return message


def _where(element: Any) -> str:
    """Name an element and its line for an error message."""
    tag = element.tag
    name = tag.rpartition("}")[2] if isinstance(tag, str) else str(tag)
    return f"<{name}> at line {element.sourceline}"


def _local_name(tag: Any) -> str | None:
    return tag.rpartition("}")[2] if isinstance(tag, str) else None


def _append(record: dict[str, Any], column: str, value: Any) -> None:
    values = record[column]
    if values is None:
        record[column] = [value]
    else:
        values.append(value)


def _repeated(column: str, spec: Spec, template: dict[str, Any]) -> Callable[[Any, dict], None]:
    """A handler that reads each occurrence of a group as one object of an array column."""

    def handle(element: Any, record: dict[str, Any]) -> None:
        value = dict(template)
        _fill(element, spec, value)
        _append(record, column, value)

    return handle


def _address(prefix: str) -> Spec:
    return _spec(
        {
            "xLgr": f"{prefix}Street",
            "nro": f"{prefix}StreetNumber",
            "xCpl": f"{prefix}Complement",
            "xBairro": f"{prefix}District",
            "cMun": f"{prefix}CityCode",
            "xMun": f"{prefix}City",
            "UF": f"{prefix}State",
            "CEP": f"{prefix}ZipCode",
            "cPais": f"{prefix}CountryCode",
            "xPais": f"{prefix}Country",
            "fone": f"{prefix}Phone",
        }
    )


def _referenced_key(element: Any, record: dict[str, Any]) -> None:
    """NFref: keep the access key of a referenced NF-e (other kinds of reference are skipped)."""
    for child in element:
        if child.tag in _REF_NFE:
            _append(record, "referencedAccessKeys", child.text)


_REF_NFE = frozenset({_NS + "refNFe", "refNFe"})

_IDE = _spec(
    {
        "cUF": "issuerUfCode",
        "cNF": "numericCode",
        "natOp": "natureOfOperation",
        "mod": "model",
        "serie": "series",
        "nNF": "number",
        "dhEmi": "issuedAt",
        "dhSaiEnt": "exitAt",
        "tpNF": "operationType",
        "idDest": "destinationType",
        "cMunFG": "taxableEventCityCode",
        "tpImp": "printFormat",
        "tpEmis": "emissionType",
        "tpAmb": "environment",
        "finNFe": "purpose",
        "tpNFDebito": "debitNoteType",
        "tpNFCredito": "creditNoteType",
        "indFinal": "finalConsumer",
        "indPres": "presenceIndicator",
        "indIntermed": "intermediaryIndicator",
        "procEmi": "issuingProcess",
        "verProc": "issuerSoftwareVersion",
        "dhCont": "contingencyAt",
        "xJust": "contingencyReason",
        "NFref": _referenced_key,
    }
)

_EMIT = _spec(
    {
        "CNPJ": "issuerCnpj",
        "CPF": "issuerCpf",
        "xNome": "issuerName",
        "xFant": "issuerTradeName",
        "enderEmit": _address("issuer"),
        "IE": "issuerStateRegistration",
        "IEST": "issuerStStateRegistration",
        "IM": "issuerMunicipalRegistration",
        "CNAE": "issuerCnae",
        "CRT": "issuerTaxRegime",
    }
)

_DEST = _spec(
    {
        "CNPJ": "recipientCnpj",
        "CPF": "recipientCpf",
        "idEstrangeiro": "recipientForeignId",
        "xNome": "recipientName",
        "enderDest": _address("recipient"),
        "indIEDest": "recipientStateRegistrationIndicator",
        "IE": "recipientStateRegistration",
        "ISUF": "recipientSuframa",
        "IM": "recipientMunicipalRegistration",
        "email": "recipientEmail",
    }
)

_ICMS_TOT = _spec(
    {
        "vBC": ("totalIcmsBase", NUMBER),
        "vICMS": ("totalIcms", NUMBER),
        "vICMSDeson": ("totalIcmsExempt", NUMBER),
        "vFCPUFDest": ("totalFcpDestination", NUMBER),
        "vICMSUFDest": ("totalIcmsDestination", NUMBER),
        "vICMSUFRemet": ("totalIcmsOrigin", NUMBER),
        "vFCP": ("totalFcp", NUMBER),
        "vBCST": ("totalIcmsStBase", NUMBER),
        "vST": ("totalIcmsSt", NUMBER),
        "vFCPST": ("totalFcpSt", NUMBER),
        "vFCPSTRet": ("totalFcpStWithheld", NUMBER),
        "qBCMono": ("totalIcmsMonophasicQuantity", NUMBER),
        "vICMSMono": ("totalIcmsMonophasic", NUMBER),
        "qBCMonoReten": ("totalIcmsMonophasicWithholdingQuantity", NUMBER),
        "vICMSMonoReten": ("totalIcmsMonophasicWithholding", NUMBER),
        "qBCMonoRet": ("totalIcmsMonophasicWithheldQuantity", NUMBER),
        "vICMSMonoRet": ("totalIcmsMonophasicWithheld", NUMBER),
        "vProd": ("totalProducts", NUMBER),
        "vFrete": ("totalFreight", NUMBER),
        "vSeg": ("totalInsurance", NUMBER),
        "vDesc": ("totalDiscount", NUMBER),
        "vII": ("totalImportTax", NUMBER),
        "vIPI": ("totalIpi", NUMBER),
        "vIPIDevol": ("totalIpiReturned", NUMBER),
        "vPIS": ("totalPis", NUMBER),
        "vCOFINS": ("totalCofins", NUMBER),
        "vOutro": ("totalOther", NUMBER),
        "vNF": ("totalInvoice", NUMBER),
        "vTotTrib": ("totalApproximateTaxes", NUMBER),
    }
)

_RET_TRIB = _spec(
    {
        "vRetPIS": ("totalWithheldPis", NUMBER),
        "vRetCOFINS": ("totalWithheldCofins", NUMBER),
        "vRetCSLL": ("totalWithheldCsll", NUMBER),
        "vBCIRRF": ("totalIrrfBase", NUMBER),
        "vIRRF": ("totalWithheldIrrf", NUMBER),
        "vBCRetPrev": ("totalSocialSecurityBase", NUMBER),
        "vRetPrev": ("totalWithheldSocialSecurity", NUMBER),
    }
)


def _ibs_cbs_tot_part(prefix: str, value_tag: str) -> Spec:
    return _spec(
        {
            "vDif": (f"{prefix}Deferred", NUMBER),
            "vDevTrib": (f"{prefix}Refund", NUMBER),
            value_tag: (prefix, NUMBER),
        }
    )


_IBS_CBS_TOT = _spec(
    {
        "vBCIBSCBS": ("totalIbsCbsBase", NUMBER),
        "gIBS": _spec(
            {
                "gIBSUF": _ibs_cbs_tot_part("totalIbsUf", "vIBSUF"),
                "gIBSMun": _ibs_cbs_tot_part("totalIbsMun", "vIBSMun"),
                "vIBS": ("totalIbs", NUMBER),
                "vCredPres": ("totalIbsPresumedCredit", NUMBER),
                "vCredPresCondSus": ("totalIbsPresumedCreditSuspended", NUMBER),
            }
        ),
        "gCBS": _spec(
            {
                "vDif": ("totalCbsDeferred", NUMBER),
                "vDevTrib": ("totalCbsRefund", NUMBER),
                "vCBS": ("totalCbs", NUMBER),
                "vCredPres": ("totalCbsPresumedCredit", NUMBER),
                "vCredPresCondSus": ("totalCbsPresumedCreditSuspended", NUMBER),
            }
        ),
        "gMono": _spec(
            {
                "vIBSMono": ("totalIbsMonophasic", NUMBER),
                "vCBSMono": ("totalCbsMonophasic", NUMBER),
                "vIBSMonoReten": ("totalIbsMonophasicWithholding", NUMBER),
                "vCBSMonoReten": ("totalCbsMonophasicWithholding", NUMBER),
                "vIBSMonoRet": ("totalIbsMonophasicWithheld", NUMBER),
                "vCBSMonoRet": ("totalCbsMonophasicWithheld", NUMBER),
            }
        ),
        "gEstornoCred": _spec(
            {
                "vIBSEstCred": ("totalIbsCreditReversal", NUMBER),
                "vCBSEstCred": ("totalCbsCreditReversal", NUMBER),
            }
        ),
    }
)

_TOTAL = _spec(
    {
        "ICMSTot": _ICMS_TOT,
        "retTrib": _RET_TRIB,
        "ISTot": _spec({"vIS": ("totalSelectiveTax", NUMBER)}),
        "IBSCBSTot": _IBS_CBS_TOT,
        "vNFTot": ("totalInvoiceWithReformTaxes", NUMBER),
    }
)

_VOLUME = _spec(
    {
        "qVol": ("quantity", INTEGER),
        "esp": "species",
        "marca": "brand",
        "nVol": "numbering",
        "pesoL": ("netWeight", NUMBER),
        "pesoB": ("grossWeight", NUMBER),
    }
)
_VOLUME_TEMPLATE = dict.fromkeys(_columns(_VOLUME))

_TRANSP = _spec(
    {
        "modFrete": "freightMode",
        "transporta": _spec(
            {
                "CNPJ": "carrierCnpj",
                "CPF": "carrierCpf",
                "xNome": "carrierName",
                "IE": "carrierStateRegistration",
                "xEnder": "carrierAddress",
                "xMun": "carrierCity",
                "UF": "carrierState",
            }
        ),
        "vol": _repeated("volumes", _VOLUME, _VOLUME_TEMPLATE),
    }
)

_INSTALLMENT = _spec({"nDup": "number", "dVenc": "dueDate", "vDup": ("amount", NUMBER)})
_INSTALLMENT_TEMPLATE = dict.fromkeys(_columns(_INSTALLMENT))

_COBR = _spec(
    {
        "fat": _spec(
            {
                "nFat": "billingNumber",
                "vOrig": ("billingOriginalValue", NUMBER),
                "vDesc": ("billingDiscount", NUMBER),
                "vLiq": ("billingNetValue", NUMBER),
            }
        ),
        "dup": _repeated("installments", _INSTALLMENT, _INSTALLMENT_TEMPLATE),
    }
)

_PAYMENT = _spec(
    {
        "indPag": "indicator",
        "tPag": "method",
        "xPag": "methodDescription",
        "vPag": ("amount", NUMBER),
        "dPag": "paidOn",
        "card": _spec(
            {
                "tpIntegra": "cardIntegration",
                "CNPJ": "cardAcquirerCnpj",
                "tBand": "cardNetwork",
                "cAut": "cardAuthorization",
            }
        ),
    }
)
_PAYMENT_TEMPLATE = dict.fromkeys(_columns(_PAYMENT))

_PAG = _spec(
    {
        "detPag": _repeated("payments", _PAYMENT, _PAYMENT_TEMPLATE),
        "vTroco": ("change", NUMBER),
    }
)

_PROTOCOL = _spec(
    {
        "tpAmb": "protocolEnvironment",
        "verAplic": "protocolApplicationVersion",
        "chNFe": "protocolAccessKey",
        "dhRecbto": "protocolReceivedAt",
        "nProt": "protocolNumber",
        "digVal": "protocolDigestValue",
        "cStat": "protocolStatusCode",
        "xMotivo": "protocolMessage",
    }
)

# --- items --------------------------------------------------------------------------------------

_PROD = _spec(
    {
        "cProd": "productCode",
        "cEAN": "ean",
        "xProd": "description",
        "NCM": "ncm",
        "CEST": "cest",
        "cBenef": "taxBenefitCode",
        "EXTIPI": "ipiExceptionCode",
        "CFOP": "cfop",
        "uCom": "commercialUnit",
        "qCom": ("commercialQuantity", NUMBER),
        "vUnCom": ("unitValue", DECIMAL_TEXT),
        "vProd": ("grossValue", NUMBER),
        "cEANTrib": "taxableEan",
        "uTrib": "taxableUnit",
        "qTrib": ("taxableQuantity", NUMBER),
        "vUnTrib": ("taxableUnitValue", DECIMAL_TEXT),
        "vFrete": ("freight", NUMBER),
        "vSeg": ("insurance", NUMBER),
        "vDesc": ("discount", NUMBER),
        "vOutro": ("otherExpenses", NUMBER),
        "indTot": "includedInTotal",
        "xPed": "orderNumber",
        "nItemPed": "orderItemNumber",
    }
)

# The fields of every ICMS group (ICMS00 ... ICMSSN900): a tag means the same in each group.
_ICMS_FIELDS = _spec(
    {
        "orig": "icmsOrigin",
        "CST": "icmsCst",
        "CSOSN": "icmsCsosn",
        "modBC": "icmsBaseMode",
        "pRedBC": ("icmsBaseReduction", NUMBER),
        "vBC": ("icmsBase", NUMBER),
        "pICMS": ("icmsRate", NUMBER),
        "vICMSOp": ("icmsOperationValue", NUMBER),
        "pDif": ("icmsDeferralRate", NUMBER),
        "vICMSDif": ("icmsDeferredValue", NUMBER),
        "vICMS": ("icmsValue", NUMBER),
        "vBCFCP": ("icmsFcpBase", NUMBER),
        "pFCP": ("icmsFcpRate", NUMBER),
        "vFCP": ("icmsFcpValue", NUMBER),
        "modBCST": "icmsStBaseMode",
        "pMVAST": ("icmsStMarginRate", NUMBER),
        "pRedBCST": ("icmsStBaseReduction", NUMBER),
        "vBCST": ("icmsStBase", NUMBER),
        "pICMSST": ("icmsStRate", NUMBER),
        "vICMSST": ("icmsStValue", NUMBER),
        "vBCFCPST": ("icmsFcpStBase", NUMBER),
        "pFCPST": ("icmsFcpStRate", NUMBER),
        "vFCPST": ("icmsFcpStValue", NUMBER),
        "vICMSSTDeson": ("icmsStExemptValue", NUMBER),
        "motDesICMSST": "icmsStExemptionReason",
        "vICMSDeson": ("icmsExemptValue", NUMBER),
        "motDesICMS": "icmsExemptionReason",
        "indDeduzDeson": "icmsExemptDeducted",
        "vBCSTRet": ("icmsStWithheldBase", NUMBER),
        "pST": ("icmsStWithheldRate", NUMBER),
        "vICMSSubstituto": ("icmsSubstituteValue", NUMBER),
        "vICMSSTRet": ("icmsStWithheldValue", NUMBER),
        "vBCFCPSTRet": ("icmsFcpStWithheldBase", NUMBER),
        "pFCPSTRet": ("icmsFcpStWithheldRate", NUMBER),
        "vFCPSTRet": ("icmsFcpStWithheldValue", NUMBER),
        "pRedBCEfet": ("icmsEffectiveBaseReduction", NUMBER),
        "vBCEfet": ("icmsEffectiveBase", NUMBER),
        "pICMSEfet": ("icmsEffectiveRate", NUMBER),
        "vICMSEfet": ("icmsEffectiveValue", NUMBER),
        "pCredSN": ("icmsSnCreditRate", NUMBER),
        "vCredICMSSN": ("icmsSnCreditValue", NUMBER),
        "qBCMono": ("icmsMonophasicQuantity", NUMBER),
        "adRemICMS": ("icmsMonophasicRate", NUMBER),
        "vICMSMono": ("icmsMonophasicValue", NUMBER),
        "qBCMonoReten": ("icmsMonophasicWithholdingQuantity", NUMBER),
        "adRemICMSReten": ("icmsMonophasicWithholdingRate", NUMBER),
        "vICMSMonoReten": ("icmsMonophasicWithholdingValue", NUMBER),
        "qBCMonoRet": ("icmsMonophasicWithheldQuantity", NUMBER),
        "adRemICMSRet": ("icmsMonophasicWithheldRate", NUMBER),
        "vICMSMonoRet": ("icmsMonophasicWithheldValue", NUMBER),
        "pBCOp": ("icmsOwnOperationBaseRate", NUMBER),
        "UFST": "icmsStState",
        "vBCSTDest": ("icmsStDestinationBase", NUMBER),
        "vICMSSTDest": ("icmsStDestinationValue", NUMBER),
    }
)


def _icms(element: Any, item: dict[str, Any]) -> None:
    """ICMS holds one group (ICMS00, ICMSSN102...): record its name and read its fields."""
    for group in element:
        name = _local_name(group.tag)
        if name is not None:
            item["icmsGroup"] = name
            _fill(group, _ICMS_FIELDS, item)


_IPI_TAX = _spec(
    {
        "CST": "ipiCst",
        "vBC": ("ipiBase", NUMBER),
        "pIPI": ("ipiRate", NUMBER),
        "qUnid": ("ipiQuantity", DECIMAL_TEXT),
        "vUnid": ("ipiUnitValue", NUMBER),
        "vIPI": ("ipiValue", NUMBER),
    }
)
_IPI = _spec(
    {
        "CNPJProd": "ipiProducerCnpj",
        "cEnq": "ipiEnquadramento",
        "IPITrib": _IPI_TAX,
        "IPINT": _IPI_TAX,
    }
)


def _pis_cofins(tax: str, column: str) -> tuple[Spec, Spec]:
    """The PIS or COFINS group (any of its Aliq/Qtde/NT/Outr groups) and the ST group."""
    fields = _spec(
        {
            "CST": f"{column}Cst",
            "vBC": (f"{column}Base", NUMBER),
            f"p{tax}": (f"{column}Rate", NUMBER),
            "qBCProd": (f"{column}QuantityBase", DECIMAL_TEXT),
            "vAliqProd": (f"{column}UnitRate", NUMBER),
            f"v{tax}": (f"{column}Value", NUMBER),
        }
    )
    group = _spec({f"{tax}{kind}": fields for kind in ("Aliq", "Qtde", "NT", "Outr")})
    st = _spec(
        {
            "vBC": (f"{column}StBase", NUMBER),
            f"p{tax}": (f"{column}StRate", NUMBER),
            "qBCProd": (f"{column}StQuantityBase", DECIMAL_TEXT),
            "vAliqProd": (f"{column}StUnitRate", NUMBER),
            f"v{tax}": (f"{column}StValue", NUMBER),
            f"indSoma{tax}ST": f"{column}StIncludedInTotal",
        }
    )
    return group, st


_PIS, _PIS_ST = _pis_cofins("PIS", "pis")
_COFINS, _COFINS_ST = _pis_cofins("COFINS", "cofins")

_ICMS_UF_DEST = _spec(
    {
        "vBCUFDest": ("icmsDestinationBase", NUMBER),
        "vBCFCPUFDest": ("icmsDestinationFcpBase", NUMBER),
        "pFCPUFDest": ("icmsDestinationFcpRate", NUMBER),
        "pICMSUFDest": ("icmsDestinationRate", NUMBER),
        "pICMSInter": ("icmsInterstateRate", NUMBER),
        "pICMSInterPart": ("icmsInterstateShareRate", NUMBER),
        "vFCPUFDest": ("icmsDestinationFcpValue", NUMBER),
        "vICMSUFDest": ("icmsDestinationValue", NUMBER),
        "vICMSUFRemet": ("icmsOriginValue", NUMBER),
    }
)

_II = _spec(
    {
        "vBC": ("importTaxBase", NUMBER),
        "vDespAdu": ("importCustomsExpenses", NUMBER),
        "vII": ("importTaxValue", NUMBER),
        "vIOF": ("importIofValue", NUMBER),
    }
)

_IS = _spec(
    {
        "CSTIS": "selectiveTaxCst",
        "cClassTribIS": "selectiveTaxClassCode",
        "vBCIS": ("selectiveTaxBase", NUMBER),
        "pIS": ("selectiveTaxRate", NUMBER),
        "adRemIS": ("selectiveTaxSpecificRate", NUMBER),
        "uTrib": "selectiveTaxUnit",
        "qTrib": ("selectiveTaxQuantity", NUMBER),
        "vIS": ("selectiveTaxValue", NUMBER),
    }
)


def _ibs_cbs_part(prefix: str, rate_tag: str, value_tag: str) -> Spec:
    """gIBSUF, gIBSMun or gCBS: rate, deferral, refund, reduction and value."""
    return _spec(
        {
            rate_tag: (f"{prefix}Rate", NUMBER),
            "gDif": _spec(
                {
                    "pDif": (f"{prefix}DeferralRate", NUMBER),
                    "vDif": (f"{prefix}DeferredValue", NUMBER),
                }
            ),
            "gDevTrib": _spec({"vDevTrib": (f"{prefix}RefundValue", NUMBER)}),
            "gRed": _spec(
                {
                    "pRedAliq": (f"{prefix}RateReduction", NUMBER),
                    "pAliqEfet": (f"{prefix}EffectiveRate", NUMBER),
                }
            ),
            value_tag: (f"{prefix}Value", NUMBER),
        }
    )


_IBS_CBS = _spec(
    {
        "CST": "ibsCbsCst",
        "cClassTrib": "ibsCbsClassCode",
        "gIBSCBS": _spec(
            {
                "vBC": ("ibsCbsBase", NUMBER),
                "gIBSUF": _ibs_cbs_part("ibsUf", "pIBSUF", "vIBSUF"),
                "gIBSMun": _ibs_cbs_part("ibsMun", "pIBSMun", "vIBSMun"),
                "vIBS": ("ibsValue", NUMBER),
                "gCBS": _ibs_cbs_part("cbs", "pCBS", "vCBS"),
                "gTribRegular": _spec(
                    {
                        "CSTReg": "ibsCbsRegularCst",
                        "cClassTribReg": "ibsCbsRegularClassCode",
                        "pAliqEfetRegIBSUF": ("ibsUfRegularRate", NUMBER),
                        "vTribRegIBSUF": ("ibsUfRegularValue", NUMBER),
                        "pAliqEfetRegIBSMun": ("ibsMunRegularRate", NUMBER),
                        "vTribRegIBSMun": ("ibsMunRegularValue", NUMBER),
                        "pAliqEfetRegCBS": ("cbsRegularRate", NUMBER),
                        "vTribRegCBS": ("cbsRegularValue", NUMBER),
                    }
                ),
            }
        ),
        "gIBSCBSMono": _spec(
            {
                "vTotIBSMonoItem": ("ibsMonophasicValue", NUMBER),
                "vTotCBSMonoItem": ("cbsMonophasicValue", NUMBER),
            }
        ),
        "gEstornoCred": _spec(
            {
                "vIBSEstCred": ("ibsCreditReversal", NUMBER),
                "vCBSEstCred": ("cbsCreditReversal", NUMBER),
            }
        ),
    }
)

_IMPOSTO = _spec(
    {
        "vTotTrib": ("approximateTaxes", NUMBER),
        "ICMS": _icms,
        "IPI": _IPI,
        "II": _II,
        "PIS": _PIS,
        "PISST": _PIS_ST,
        "COFINS": _COFINS,
        "COFINSST": _COFINS_ST,
        "ICMSUFDest": _ICMS_UF_DEST,
        "IS": _IS,
        "IBSCBS": _IBS_CBS,
    }
)

_DET = _spec(
    {
        "prod": _PROD,
        "imposto": _IMPOSTO,
        "impostoDevol": _spec(
            {
                "pDevol": ("returnedPercentage", NUMBER),
                "IPI": _spec({"vIPIDevol": ("ipiReturnedValue", NUMBER)}),
            }
        ),
        "infAdProd": "additionalItemInfo",
        "vItem": ("itemTotalValue", NUMBER),
    }
)

ITEM_COLUMNS: tuple[str, ...] = (
    "itemNumber",
    *_columns(_PROD),
    "approximateTaxes",
    "icmsGroup",
    *_columns(_ICMS_FIELDS),
    *_columns(_ICMS_UF_DEST),
    *_columns(_IPI),
    *_columns(_II),
    *_columns(_PIS),
    *_columns(_PIS_ST),
    *_columns(_COFINS),
    *_columns(_COFINS_ST),
    *_columns(_IS),
    *_columns(_IBS_CBS),
    "returnedPercentage",
    "ipiReturnedValue",
    "itemTotalValue",
    "additionalItemInfo",
)
_ITEM_TEMPLATE = dict.fromkeys(ITEM_COLUMNS)


def _item(element: Any, items: list[dict[str, Any]]) -> None:
    """det: one item record, numbered by its nItem attribute."""
    number = element.get("nItem")
    if number is None or _INTEGER(number) is None:
        raise NfeError(f"{_where(element)}: nItem {number!r} is not an item number")
    item = dict(_ITEM_TEMPLATE)
    item["itemNumber"] = int(number)
    _fill(element, _DET, item)
    items.append(item)


_INF_NFE = _spec(
    {
        "ide": _IDE,
        "emit": _EMIT,
        "dest": _DEST,
        "total": _TOTAL,
        "transp": _TRANSP,
        "cobr": _COBR,
        "pag": _PAG,
        "infIntermed": _spec({"CNPJ": "intermediaryCnpj", "idCadIntTran": "intermediarySellerId"}),
        "infAdic": _spec({"infAdFisco": "taxAuthorityInfo", "infCpl": "additionalInfo"}),
    }
)
_DET_TAGS = frozenset({_NS + "det", "det"})

HEADER_COLUMNS: tuple[str, ...] = (
    "accessKey",
    "layoutVersion",
    *_columns(_IDE),
    "referencedAccessKeys",
    *_columns(_EMIT),
    *_columns(_DEST),
    *_columns(_TOTAL),
    *_columns(_TRANSP),
    "volumes",
    *_columns(_COBR),
    "installments",
    "payments",
    *_columns(_PAG),
    *_columns(_INF_NFE["infIntermed"][2]),
    *_columns(_INF_NFE["infAdic"][2]),
    *_columns(_PROTOCOL),
)
_HEADER_TEMPLATE = dict.fromkeys(HEADER_COLUMNS)
PAYMENT_COLUMNS = tuple(_PAYMENT_TEMPLATE)
VOLUME_COLUMNS = tuple(_VOLUME_TEMPLATE)
INSTALLMENT_COLUMNS = tuple(_INSTALLMENT_TEMPLATE)

_NFE_PROC = frozenset({_NS + "nfeProc", "nfeProc"})
_NFE = frozenset({_NS + "NFe", "NFe"})
_INFNFE = frozenset({_NS + "infNFe", "infNFe"})
_PROT_NFE = frozenset({_NS + "protNFe", "protNFe"})
_INF_PROT = frozenset({_NS + "infProt", "infProt"})


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
    """Parse NF-e 4.00 files (nfeProc or a bare NFe) into header and item records.

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
        """Return the header and items of one NF-e XML (text or bytes); NfeError if unreadable."""
        root = self._root(xml)
        tag = root.tag
        protocol = None
        if tag in _NFE_PROC:
            nfe = None
            for child in root:
                if child.tag in _NFE:
                    nfe = child
                elif child.tag in _PROT_NFE:
                    protocol = child
            if nfe is None:
                raise NfeError("not an NF-e: nfeProc holds no NFe element")
        elif tag in _NFE:
            nfe = root
        else:
            raise NfeError(f"not an NF-e: the root element is {_qualified(tag)}")
        info = _first(nfe, _INFNFE)
        if info is None:
            raise NfeError("not an NF-e: NFe holds no infNFe element")

        header = dict(_HEADER_TEMPLATE)
        items: list[dict[str, Any]] = []
        spec = _INF_NFE
        for child in info:
            child_tag = child.tag
            if child_tag in _DET_TAGS:
                _item(child, items)
                continue
            entry = spec.get(child_tag)
            if entry is not None:
                _fill(child, entry[2], header)
        if protocol is not None:
            info_prot = _first(protocol, _INF_PROT)
            if info_prot is not None:
                _fill(info_prot, _PROTOCOL, header)
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
