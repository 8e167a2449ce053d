"""The NF-e field tables: which tag of infNFe (and protNFe) fills which column, and how.

The header carries the invoice's identification, parties, totals (ICMSTot, the 2026 IBS/CBS
totals), transport, billing, payments and authorization protocol; its columns are added to the
`invoice_documents` stream. Items (`det`) feed the `invoice_items` stream. An NF-e event
(procEventoNFe: a cancellation, a correction letter...) fills the event columns of the same
header instead, and has no items. Column names, types and NF-e tag paths are documented in
`schemas/nfe_header_properties.json` and `schemas/invoice_items.json` (paths relative to
infNFe; protNFe/... relative to nfeProc; evento/... and retEvento/... to procEventoNFe).

Each field's kind follows its NF-e type: decimals of at most 15 significant digits (money
TDec_1302, quantities TDec_1104v, rates TDec_0302a04...) are NUMBER (exact floats); those that
can exceed a double (unit values TDec_1110v, quantity bases TDec_1204v) stay DECIMAL_TEXT.
Codes (CFOP, NCM, CST, CNPJ, cStat...) and identifiers stay strings; dates stay the XML's ISO
text with its UTC offset. A missing group or an empty element gives null (the templates).
"""

from __future__ import annotations

from typing import Any

from source_sp_invoices.nfe.convert import NfeError, match_integer, where
from source_sp_invoices.nfe.spec import (
    DECIMAL_TEXT,
    INTEGER,
    NS_PREFIX,
    NUMBER,
    Spec,
    append,
    columns,
    fill,
    repeated,
    spec,
)

# --- header -------------------------------------------------------------------------------------


def _address(prefix: str) -> Spec:
    return spec(
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
            append(record, "referencedAccessKeys", child.text)


_REF_NFE = frozenset({NS_PREFIX + "refNFe", "refNFe"})

_IDE = spec(
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

_EMIT = spec(
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

_DEST = spec(
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

_ICMS_TOT = spec(
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

_RET_TRIB = spec(
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
    return spec(
        {
            "vDif": (f"{prefix}Deferred", NUMBER),
            "vDevTrib": (f"{prefix}Refund", NUMBER),
            value_tag: (prefix, NUMBER),
        }
    )


_IBS_CBS_TOT = spec(
    {
        "vBCIBSCBS": ("totalIbsCbsBase", NUMBER),
        "gIBS": spec(
            {
                "gIBSUF": _ibs_cbs_tot_part("totalIbsUf", "vIBSUF"),
                "gIBSMun": _ibs_cbs_tot_part("totalIbsMun", "vIBSMun"),
                "vIBS": ("totalIbs", NUMBER),
                "vCredPres": ("totalIbsPresumedCredit", NUMBER),
                "vCredPresCondSus": ("totalIbsPresumedCreditSuspended", NUMBER),
            }
        ),
        "gCBS": spec(
            {
                "vDif": ("totalCbsDeferred", NUMBER),
                "vDevTrib": ("totalCbsRefund", NUMBER),
                "vCBS": ("totalCbs", NUMBER),
                "vCredPres": ("totalCbsPresumedCredit", NUMBER),
                "vCredPresCondSus": ("totalCbsPresumedCreditSuspended", NUMBER),
            }
        ),
        "gMono": spec(
            {
                "vIBSMono": ("totalIbsMonophasic", NUMBER),
                "vCBSMono": ("totalCbsMonophasic", NUMBER),
                "vIBSMonoReten": ("totalIbsMonophasicWithholding", NUMBER),
                "vCBSMonoReten": ("totalCbsMonophasicWithholding", NUMBER),
                "vIBSMonoRet": ("totalIbsMonophasicWithheld", NUMBER),
                "vCBSMonoRet": ("totalCbsMonophasicWithheld", NUMBER),
            }
        ),
        "gEstornoCred": spec(
            {
                "vIBSEstCred": ("totalIbsCreditReversal", NUMBER),
                "vCBSEstCred": ("totalCbsCreditReversal", NUMBER),
            }
        ),
    }
)

_TOTAL = spec(
    {
        "ICMSTot": _ICMS_TOT,
        "retTrib": _RET_TRIB,
        "ISTot": spec({"vIS": ("totalSelectiveTax", NUMBER)}),
        "IBSCBSTot": _IBS_CBS_TOT,
        "vNFTot": ("totalInvoiceWithReformTaxes", NUMBER),
    }
)

_VOLUME = spec(
    {
        "qVol": ("quantity", INTEGER),
        "esp": "species",
        "marca": "brand",
        "nVol": "numbering",
        "pesoL": ("netWeight", NUMBER),
        "pesoB": ("grossWeight", NUMBER),
    }
)
_VOLUME_TEMPLATE = dict.fromkeys(columns(_VOLUME))

_TRANSP = spec(
    {
        "modFrete": "freightMode",
        "transporta": spec(
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
        "vol": repeated("volumes", _VOLUME, _VOLUME_TEMPLATE),
    }
)

_INSTALLMENT = spec({"nDup": "number", "dVenc": "dueDate", "vDup": ("amount", NUMBER)})
_INSTALLMENT_TEMPLATE = dict.fromkeys(columns(_INSTALLMENT))

_COBR = spec(
    {
        "fat": spec(
            {
                "nFat": "billingNumber",
                "vOrig": ("billingOriginalValue", NUMBER),
                "vDesc": ("billingDiscount", NUMBER),
                "vLiq": ("billingNetValue", NUMBER),
            }
        ),
        "dup": repeated("installments", _INSTALLMENT, _INSTALLMENT_TEMPLATE),
    }
)

_PAYMENT = spec(
    {
        "indPag": "indicator",
        "tPag": "method",
        "xPag": "methodDescription",
        "vPag": ("amount", NUMBER),
        "dPag": "paidOn",
        "card": spec(
            {
                "tpIntegra": "cardIntegration",
                "CNPJ": "cardAcquirerCnpj",
                "tBand": "cardNetwork",
                "cAut": "cardAuthorization",
            }
        ),
    }
)
_PAYMENT_TEMPLATE = dict.fromkeys(columns(_PAYMENT))

_PAG = spec(
    {
        "detPag": repeated("payments", _PAYMENT, _PAYMENT_TEMPLATE),
        "vTroco": ("change", NUMBER),
    }
)

PROTOCOL: Spec = spec(
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

_PROD = spec(
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
_ICMS_FIELDS = spec(
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


def _local_name(tag: Any) -> str | None:
    return tag.rpartition("}")[2] if isinstance(tag, str) else None


def _icms(element: Any, item: dict[str, Any]) -> None:
    """ICMS holds one group (ICMS00, ICMSSN102...): record its name and read its fields."""
    for group in element:
        name = _local_name(group.tag)
        if name is not None:
            item["icmsGroup"] = name
            fill(group, _ICMS_FIELDS, item)


_IPI_TAX = spec(
    {
        "CST": "ipiCst",
        "vBC": ("ipiBase", NUMBER),
        "pIPI": ("ipiRate", NUMBER),
        "qUnid": ("ipiQuantity", DECIMAL_TEXT),
        "vUnid": ("ipiUnitValue", NUMBER),
        "vIPI": ("ipiValue", NUMBER),
    }
)
_IPI = spec(
    {
        "CNPJProd": "ipiProducerCnpj",
        "cEnq": "ipiEnquadramento",
        "IPITrib": _IPI_TAX,
        "IPINT": _IPI_TAX,
    }
)


def _pis_cofins(tax: str, column: str) -> tuple[Spec, Spec]:
    """The PIS or COFINS group (any of its Aliq/Qtde/NT/Outr groups) and the ST group."""
    fields = spec(
        {
            "CST": f"{column}Cst",
            "vBC": (f"{column}Base", NUMBER),
            f"p{tax}": (f"{column}Rate", NUMBER),
            "qBCProd": (f"{column}QuantityBase", DECIMAL_TEXT),
            "vAliqProd": (f"{column}UnitRate", NUMBER),
            f"v{tax}": (f"{column}Value", NUMBER),
        }
    )
    group = spec({f"{tax}{kind}": fields for kind in ("Aliq", "Qtde", "NT", "Outr")})
    st = spec(
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

_ICMS_UF_DEST = spec(
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

_II = spec(
    {
        "vBC": ("importTaxBase", NUMBER),
        "vDespAdu": ("importCustomsExpenses", NUMBER),
        "vII": ("importTaxValue", NUMBER),
        "vIOF": ("importIofValue", NUMBER),
    }
)

_IS = spec(
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
    return spec(
        {
            rate_tag: (f"{prefix}Rate", NUMBER),
            "gDif": spec(
                {
                    "pDif": (f"{prefix}DeferralRate", NUMBER),
                    "vDif": (f"{prefix}DeferredValue", NUMBER),
                }
            ),
            "gDevTrib": spec({"vDevTrib": (f"{prefix}RefundValue", NUMBER)}),
            "gRed": spec(
                {
                    "pRedAliq": (f"{prefix}RateReduction", NUMBER),
                    "pAliqEfet": (f"{prefix}EffectiveRate", NUMBER),
                }
            ),
            value_tag: (f"{prefix}Value", NUMBER),
        }
    )


_IBS_CBS = spec(
    {
        "CST": "ibsCbsCst",
        "cClassTrib": "ibsCbsClassCode",
        "gIBSCBS": spec(
            {
                "vBC": ("ibsCbsBase", NUMBER),
                "gIBSUF": _ibs_cbs_part("ibsUf", "pIBSUF", "vIBSUF"),
                "gIBSMun": _ibs_cbs_part("ibsMun", "pIBSMun", "vIBSMun"),
                "vIBS": ("ibsValue", NUMBER),
                "gCBS": _ibs_cbs_part("cbs", "pCBS", "vCBS"),
                "gTribRegular": spec(
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
        "gIBSCBSMono": spec(
            {
                "vTotIBSMonoItem": ("ibsMonophasicValue", NUMBER),
                "vTotCBSMonoItem": ("cbsMonophasicValue", NUMBER),
            }
        ),
        "gEstornoCred": spec(
            {
                "vIBSEstCred": ("ibsCreditReversal", NUMBER),
                "vCBSEstCred": ("cbsCreditReversal", NUMBER),
            }
        ),
    }
)

_IMPOSTO = spec(
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

_DET = spec(
    {
        "prod": _PROD,
        "imposto": _IMPOSTO,
        "impostoDevol": spec(
            {
                "pDevol": ("returnedPercentage", NUMBER),
                "IPI": spec({"vIPIDevol": ("ipiReturnedValue", NUMBER)}),
            }
        ),
        "infAdProd": "additionalItemInfo",
        "vItem": ("itemTotalValue", NUMBER),
    }
)

ITEM_COLUMNS: tuple[str, ...] = (
    "itemNumber",
    *columns(_PROD),
    "approximateTaxes",
    "icmsGroup",
    *columns(_ICMS_FIELDS),
    *columns(_ICMS_UF_DEST),
    *columns(_IPI),
    *columns(_II),
    *columns(_PIS),
    *columns(_PIS_ST),
    *columns(_COFINS),
    *columns(_COFINS_ST),
    *columns(_IS),
    *columns(_IBS_CBS),
    "returnedPercentage",
    "ipiReturnedValue",
    "itemTotalValue",
    "additionalItemInfo",
)
_ITEM_TEMPLATE = dict.fromkeys(ITEM_COLUMNS)


def read_item(element: Any, items: list[dict[str, Any]]) -> None:
    """det: one item record, numbered by its nItem attribute."""
    number = element.get("nItem")
    if number is None or match_integer(number) is None:
        raise NfeError(f"{where(element)}: nItem {number!r} is not an item number")
    item = dict(_ITEM_TEMPLATE)
    item["itemNumber"] = int(number)
    fill(element, _DET, item)
    items.append(item)


INF_NFE: Spec = spec(
    {
        "ide": _IDE,
        "emit": _EMIT,
        "dest": _DEST,
        "total": _TOTAL,
        "transp": _TRANSP,
        "cobr": _COBR,
        "pag": _PAG,
        "infIntermed": spec({"CNPJ": "intermediaryCnpj", "idCadIntTran": "intermediarySellerId"}),
        "infAdic": spec({"infAdFisco": "taxAuthorityInfo", "infCpl": "additionalInfo"}),
        # The company whose software issued the NF-e (required by most states since 2020).
        "infRespTec": spec(
            {
                "CNPJ": "technicalResponsibleCnpj",
                "xContato": "technicalResponsibleContact",
                "email": "technicalResponsibleEmail",
                "fone": "technicalResponsiblePhone",
            }
        ),
    }
)
DET_TAGS: frozenset[str] = frozenset({NS_PREFIX + "det", "det"})

# --- events -------------------------------------------------------------------------------------

NFE_DOCUMENT, EVENT_DOCUMENT = "nfe", "event"  # the documentType column: what the file is

EVENT: Spec = spec(
    {
        "tpEvento": "eventType",
        "chNFe": "eventAccessKey",
        "dhEvento": "eventAt",
        "nSeqEvento": ("eventSequence", INTEGER),
        "detEvento": spec(
            {
                "descEvento": "eventDescription",
                "xJust": "eventJustification",
                "xCorrecao": "eventCorrection",
            }
        ),
    }
)
EVENT_REGISTRATION: Spec = spec(
    {
        "cStat": "eventStatusCode",
        "xMotivo": "eventStatusMessage",
        "dhRegEvento": "eventRegisteredAt",
        "nProt": "eventProtocolNumber",
    }
)

HEADER_COLUMNS: tuple[str, ...] = (
    "documentType",
    "accessKey",
    "layoutVersion",
    *columns(_IDE),
    "referencedAccessKeys",
    *columns(_EMIT),
    *columns(_DEST),
    *columns(_TOTAL),
    *columns(_TRANSP),
    "volumes",
    *columns(_COBR),
    "installments",
    "payments",
    *columns(_PAG),
    *columns(INF_NFE["infIntermed"][2]),
    *columns(INF_NFE["infAdic"][2]),
    *columns(INF_NFE["infRespTec"][2]),
    *columns(PROTOCOL),
    *columns(EVENT),
    *columns(EVENT_REGISTRATION),
)
HEADER_TEMPLATE: dict[str, Any] = dict.fromkeys(HEADER_COLUMNS)
PAYMENT_COLUMNS: tuple[str, ...] = tuple(_PAYMENT_TEMPLATE)
VOLUME_COLUMNS: tuple[str, ...] = tuple(_VOLUME_TEMPLATE)
INSTALLMENT_COLUMNS: tuple[str, ...] = tuple(_INSTALLMENT_TEMPLATE)
