"""The invoice model: what getInvoices serves plus the full NF-e behind it.

The API only shows a few metadata fields; the NF-e part (parties, items, taxes, totals, protocol)
is kept so that a later NF-e 4.00 XML writer can render the very invoice the API lists. Money is
`Decimal`, never float, so totals add up exactly. NF-e tag names are given next to each field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
BRAZIL_TZ = timezone(timedelta(hours=-3), "BRT")


def api_datetime(moment: datetime) -> str:
    """Format a UTC datetime the way the Invoices API does: 2024-07-10T15:00:00.123Z."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class TransactionId:
    """One TransactionIdentifier of the API (name is a transactionIdentifierName option)."""

    name: str
    id: str

    def to_api(self) -> dict[str, str]:
        """Return the API JSON object."""
        return {"name": self.name, "id": self.id}


@dataclass(frozen=True)
class Address:
    """enderEmit / enderDest."""

    street: str  # xLgr
    number: str  # nro
    complement: str  # xCpl ("" when absent)
    district: str  # xBairro
    city_code: str  # cMun, 7-digit IBGE code
    city: str  # xMun
    uf: str  # UF
    cep: str  # CEP, 8 digits
    country_code: str = "1058"  # cPais
    country: str = "Brasil"  # xPais
    phone: str = ""  # fone


@dataclass(frozen=True)
class Party:
    """emit or dest: a company (CNPJ) or a person (CPF)."""

    document: str  # CNPJ (14 digits) or CPF (11 digits)
    name: str  # xNome
    address: Address
    trade_name: str = ""  # xFant (issuer only)
    state_registration: str = ""  # IE ("" for people and non-contributors)
    ie_indicator: int = 9  # indIEDest: 1 contributor, 2 exempt, 9 non-contributor
    tax_regime: int = 3  # CRT (issuer only): 3 = regime normal
    email: str = ""  # email (dest)

    @property
    def document_type(self) -> str:
        """Return "CNPJ" or "CPF": the NF-e tag that holds the document."""
        return "CNPJ" if len(self.document) == 14 else "CPF"


@dataclass(frozen=True)
class Item:
    """One det line: prod plus imposto (ICMS, PIS, COFINS; IPI is zero for resale)."""

    number: int  # det/@nItem, 1-based
    product_code: str  # cProd (seller SKU)
    ean: str  # cEAN and cEANTrib
    description: str  # xProd
    ncm: str  # NCM
    cfop: str  # CFOP
    unit: str  # uCom and uTrib
    quantity: Decimal  # qCom and qTrib, 4 decimals
    unit_value: Decimal  # vUnCom and vUnTrib
    gross_value: Decimal  # vProd = quantity * unit_value
    discount: Decimal  # vDesc
    freight: Decimal  # vFrete
    icms_origin: str  # ICMS/orig
    icms_cst: str  # ICMS/CST: 00 taxed, 41 not taxed
    icms_base: Decimal  # ICMS/vBC
    icms_rate: Decimal  # ICMS/pICMS
    icms_value: Decimal  # ICMS/vICMS
    pis_cst: str  # PIS/CST
    pis_base: Decimal  # PIS/vBC
    pis_rate: Decimal  # PIS/pPIS
    pis_value: Decimal  # PIS/vPIS
    cofins_cst: str  # COFINS/CST
    cofins_base: Decimal  # COFINS/vBC
    cofins_rate: Decimal  # COFINS/pCOFINS
    cofins_value: Decimal  # COFINS/vCOFINS
    asin: str = ""  # infAdProd: the Amazon ASIN

    @property
    def net_value(self) -> Decimal:
        """Return what this line adds to vNF: vProd - vDesc + vFrete."""
        return self.gross_value - self.discount + self.freight


@dataclass(frozen=True)
class Totals:
    """total/ICMSTot: every value is the exact sum of the items' values."""

    icms_base: Decimal  # vBC
    icms_value: Decimal  # vICMS
    products: Decimal  # vProd
    freight: Decimal  # vFrete
    insurance: Decimal  # vSeg
    discount: Decimal  # vDesc
    ipi: Decimal  # vIPI
    pis: Decimal  # vPIS
    cofins: Decimal  # vCOFINS
    other: Decimal  # vOutro
    invoice_total: Decimal  # vNF = vProd - vDesc + vFrete + vSeg + vOutro + vIPI

    @classmethod
    def of(cls, items: tuple[Item, ...]) -> Totals:
        """Sum the items into the ICMSTot group."""
        products = sum((i.gross_value for i in items), ZERO)
        discount = sum((i.discount for i in items), ZERO)
        freight = sum((i.freight for i in items), ZERO)
        return cls(
            icms_base=sum((i.icms_base for i in items), ZERO),
            icms_value=sum((i.icms_value for i in items), ZERO),
            products=products,
            freight=freight,
            insurance=ZERO,
            discount=discount,
            ipi=ZERO,
            pis=sum((i.pis_value for i in items), ZERO),
            cofins=sum((i.cofins_value for i in items), ZERO),
            other=ZERO,
            invoice_total=products - discount + freight,
        )


@dataclass(frozen=True)
class Payment:
    """pag/detPag: tPag 03 card, 15 boleto, 17 PIX, 90 no payment."""

    method: str  # tPag
    amount: Decimal  # vPag


@dataclass(frozen=True)
class Transport:
    """transp: modFrete 0 = by the issuer, 9 = no transport; carrier and volumes."""

    mode: str  # modFrete
    carrier_name: str = ""  # transporta/xNome
    carrier_cnpj: str = ""  # transporta/CNPJ
    volumes: int = 0  # vol/qVol
    gross_weight_kg: Decimal = Decimal("0.000")  # vol/pesoB


@dataclass(frozen=True)
class Protocol:
    """protNFe/infProt: the SEFAZ answer (cStat 100 = authorized; a rejection has no nProt)."""

    number: str  # nProt, 15 digits ("" when rejected)
    status_code: str  # cStat
    reason: str  # xMotivo
    received_at: datetime  # dhRecbto (UTC; render in BRT)
    digest: str  # digVal, base64 SHA-1 of the signed document


@dataclass(frozen=True)
class Cancellation:
    """procEventoNFe of a cancellation (tpEvento 110111)."""

    protocol_number: str  # nProt of the event
    at: datetime  # dhEvento / dhRegEvento (UTC)
    justification: str  # xJust (at least 15 characters)


@dataclass(frozen=True)
class NFe:
    """Everything of the NF-e that does not change after issuance."""

    access_key: str  # infNFe/@Id without the "NFe" prefix; also protNFe chNFe
    numeric_code: int  # ide/cNF
    uf_code: int  # ide/cUF, the issuer's state
    nature_of_operation: str  # ide/natOp
    model: str  # ide/mod ("55")
    series: int  # ide/serie
    number: int  # ide/nNF
    issued_at: datetime  # ide/dhEmi (UTC; render in BRT -03:00)
    direction: int  # ide/tpNF: 0 entrada, 1 saída
    destination: int  # ide/idDest: 1 internal, 2 interstate
    city_code: str  # ide/cMunFG, the issuer's municipality
    purpose: int  # ide/finNFe: 1 normal, 4 devolução
    final_consumer: int  # ide/indFinal
    presence: int  # ide/indPres: 2 internet, 9 other
    issuer: Party  # emit
    recipient: Party  # dest
    items: tuple[Item, ...]  # det
    totals: Totals  # total/ICMSTot
    transport: Transport  # transp
    payment: Payment  # pag
    additional_info: str  # infAdic/infCpl
    referenced_keys: tuple[str, ...] = ()  # ide/NFref/refNFe (returns)
    environment: int = 1  # ide/tpAmb: 1 production
    emission_type: int = 1  # ide/tpEmis: 1 normal


@dataclass
class Invoice:
    """One invoice: the API metadata (mutable status) and its NF-e."""

    id: str
    date: datetime  # UTC, millisecond precision
    invoice_type: str
    transaction_type: str
    transaction_ids: tuple[TransactionId, ...]
    nfe: NFe
    status: str
    protocol: Protocol
    error_code: str = ""
    gov_response: str = ""
    cancellation: Cancellation | None = None
    order_id: str = ""  # infAdic: the Amazon order the invoice belongs to

    @property
    def series(self) -> str:
        """Return the API `series` (the NF-e serie as text)."""
        return str(self.nfe.series)

    @property
    def external_invoice_id(self) -> str:
        """Return the API `externalInvoiceId`: the NF-e number nNF."""
        return str(self.nfe.number)

    @property
    def sort_key(self) -> tuple[datetime, str]:
        """Return the order the API pages in: by date, ties broken by id."""
        return (self.date, self.id)

    def to_api(self) -> dict[str, Any]:
        """Return the Invoice JSON object exactly as getInvoices / getInvoice serve it."""
        return {
            "date": api_datetime(self.date),
            "errorCode": self.error_code,
            "externalInvoiceId": self.external_invoice_id,
            "govResponse": self.gov_response,
            "id": self.id,
            "invoiceType": self.invoice_type,
            "series": self.series,
            "status": self.status,
            "transactionIds": [t.to_api() for t in self.transaction_ids],
            "transactionType": self.transaction_type,
        }
