"""Deterministic generator of Brazilian FBA invoices (API metadata plus the full NF-e).

Every random draw comes from a `random.Random` seeded with a string built from the data set seed
and what is being drawn (the parties, one day, one extra invoice). The same seed therefore gives
the same data on every machine and Python run, and a day's invoices do not depend on how many
days are generated after it.
"""

from __future__ import annotations

import base64
import random
import string
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from . import catalog
from .brazil import make_access_key, make_cnpj, make_cpf
from .catalog import CITIES, CITY_WEIGHTS, FULFILLMENT_CENTERS, STATES, City, FulfillmentCenter
from .models import (
    BRAZIL_TZ,
    CENT,
    ZERO,
    Address,
    Cancellation,
    Invoice,
    Item,
    NFe,
    Party,
    Payment,
    Protocol,
    Totals,
    TransactionId,
    Transport,
)

DayCount = int | tuple[int, int] | Callable[[date, random.Random], int]
"""How many invoices a day gets: a fixed number, an inclusive (low, high) range, or a function
of the day and that day's seeded random generator."""

QUANTITY = Decimal("0.0001")
PIS_RATE = Decimal("1.65")
COFINS_RATE = Decimal("7.60")
STATUS_WEIGHTS: dict[str, int] = {"AUTHORIZED": 90, "CANCELED": 6, "REJECTED": 4}
ITEM_COUNT_WEIGHTS: tuple[int, ...] = (55, 25, 10, 6, 4)  # 1..5 det lines
SERIES_WEIGHTS: tuple[int, ...] = (80, 15, 5)  # series 1..3
MAX_DAILY_INVOICES = 100_000


@dataclass(frozen=True)
class Kind:
    """One business flow: its API classification and how its NF-e is built."""

    invoice_type: str
    transaction_type: str
    nature: str  # natOp
    weight: int
    from_amazon: bool  # issuer is the Amazon warehouse and recipient the seller
    taxed: bool
    direction: int  # tpNF
    purpose: int  # finNFe
    cfop_internal: str
    cfop_interstate_person: str
    cfop_interstate_company: str
    pis_cst: str
    identifiers: tuple[str, ...]


KINDS: tuple[Kind, ...] = (
    Kind(
        "SHIPMENT",
        "CUSTOMER_SALES",
        "Venda de mercadoria adquirida de terceiros",
        70,
        from_amazon=False,
        taxed=True,
        direction=1,
        purpose=1,
        cfop_internal="5102",
        cfop_interstate_person="6108",
        cfop_interstate_company="6102",
        pis_cst="01",
        identifiers=("BUSINESS_TRANSACTION_ID", "SHIPMENT_ID"),
    ),
    Kind(
        "SYMBOLIC_RETURN",
        "CUSTOMER_SALES_SYMBOLIC",
        "Retorno simbólico de mercadoria depositada em armazém geral",
        18,
        from_amazon=True,
        taxed=False,
        direction=1,
        purpose=1,
        cfop_internal="5907",
        cfop_interstate_person="6907",
        cfop_interstate_company="6907",
        pis_cst="08",
        identifiers=("BUSINESS_TRANSACTION_ID", "SHIPMENT_ID"),
    ),
    Kind(
        "RETURN",
        "CUSTOMER_RETURN",
        "Devolução de venda de mercadoria adquirida de terceiros",
        8,
        from_amazon=False,
        taxed=True,
        direction=0,
        purpose=4,
        cfop_internal="1202",
        cfop_interstate_person="2202",
        cfop_interstate_company="2202",
        pis_cst="50",
        identifiers=("BUSINESS_TRANSACTION_ID",),
    ),
    Kind(
        "REMOVAL",
        "REMOVAL_ORDER",
        "Retorno de mercadoria depositada em armazém geral",
        4,
        from_amazon=True,
        taxed=False,
        direction=1,
        purpose=1,
        cfop_internal="5906",
        cfop_interstate_person="6906",
        cfop_interstate_company="6906",
        pis_cst="08",
        identifiers=("BUSINESS_TRANSACTION_ID", "SHIPMENT_ID"),
    ),
)
KINDS_BY_TYPE: dict[str, Kind] = {k.invoice_type: k for k in KINDS}


def day_profile(
    quiet: tuple[int, int] = (0, 3),
    normal: tuple[int, int] = (5, 40),
    busy: tuple[int, int] = (150, 250),
    quiet_share: float = 0.25,
    busy_share: float = 0.1,
) -> Callable[[date, random.Random], int]:
    """Return a DayCount mixing quiet, normal and busy days (shares are probabilities)."""

    def count(_day: date, rng: random.Random) -> int:
        draw = rng.random()
        low, high = quiet if draw < quiet_share else busy if draw > 1 - busy_share else normal
        return rng.randint(low, high)

    return count


def spread(total: int, days: int, seed: int) -> list[int]:
    """Exactly `total` invoices over `days` days, each on a day drawn at random (seeded): a
    data set whose size is known exactly, as "20,000 invoices in a year" says."""
    rng = random.Random(seed)
    counts = [0] * days
    for _ in range(total):
        counts[rng.randrange(days)] += 1
    return counts


def day_counts(counts: list[int], start: date) -> Callable[[date, random.Random], int]:
    """Return a DayCount of `counts[n]` invoices on the n-th day from `start`."""
    return lambda day, _rng: counts[(day - start).days]


def resolve_day_count(spec: DayCount, day: date, rng: random.Random) -> int:
    """Turn a DayCount into the number of invoices of one day."""
    if isinstance(spec, int):
        count = spec
    elif isinstance(spec, tuple):
        count = rng.randint(*spec)
    else:
        count = spec(day, rng)
    if not 0 <= count <= MAX_DAILY_INVOICES:
        raise ValueError(f"invoices for {day} must be 0..{MAX_DAILY_INVOICES}, got {count}")
    return count


def _digits(rng: random.Random, count: int) -> str:
    """Return `count` random decimal digits (may start with 0)."""
    return f"{rng.randrange(10**count):0{count}d}"


def _ascii_slug(text: str) -> str:
    """Strip accents and spaces, for e-mail addresses: "João Araújo" -> "joao.araujo"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return ".".join(plain.lower().split())


def _money(rng: random.Random, low: Decimal, high: Decimal) -> Decimal:
    """Draw an amount in whole cents between low and high, ending in ,90 like shop prices."""
    reais = rng.randint(int(low), int(high))
    return Decimal(reais) + Decimal("0.90")


def _percent(base: Decimal, rate: Decimal) -> Decimal:
    """Return rate% of base rounded half-up to the cent, as NF-e validators expect."""
    return (base * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def _state_registration(rng: random.Random, uf: str) -> str:
    """Return a plausible IE (12 digits in SP, 13 in DF, 9 elsewhere; check digits not modelled)."""
    length = {"SP": 12, "DF": 13, "MG": 13}.get(uf, 9)
    return str(rng.randint(1, 9)) + _digits(rng, length - 1)


def _phone(rng: random.Random, city: City) -> str:
    """Return a phone number with an area code that fits the state."""
    area = {"SP": "11", "RJ": "21", "MG": "31", "PE": "81", "RS": "51", "DF": "61"}.get(
        city.uf, "71"
    )
    return f"{area}9{_digits(rng, 8)}"


@dataclass(frozen=True)
class _Site:
    """A fulfillment center with the seller's and Amazon's branches registered there."""

    center: FulfillmentCenter
    seller: Party
    amazon: Party


class InvoiceGenerator:
    """Builds invoices for one seed; keeps the NF-e number counters between calls."""

    def __init__(self, seed: int) -> None:
        """Draw the seller, its fulfillment-center branches and Amazon's warehouse branches."""
        self.seed = seed
        self._counters: dict[tuple[str, int], int] = {}
        self._extra_count = 0
        rng = random.Random(f"{seed}/parties")
        seller_root = _digits(rng, 8)
        amazon_root = _digits(rng, 8)
        surname, surname2 = rng.sample(catalog.SURNAMES, 2)
        name_pattern, trade_pattern = rng.choice(catalog.SELLER_NAME_PATTERNS)
        seller_name = name_pattern.format(surname=surname, surname2=surname2)
        trade_name = trade_pattern.format(surname=surname)
        others = [fc for fc in FULFILLMENT_CENTERS[1:] if rng.random() < 0.6]
        self._sites: list[_Site] = []
        for branch, center in enumerate([FULFILLMENT_CENTERS[0], *others], start=2):
            address = Address(
                street=center.street,
                number=center.number,
                complement="",
                district=center.district,
                city_code=center.city.code,
                city=center.city.name,
                uf=center.city.uf,
                cep=center.cep,
                phone=_phone(rng, center.city),
            )
            seller = Party(
                document=make_cnpj(seller_root, branch),
                name=seller_name,
                trade_name=trade_name,
                address=address,
                state_registration=_state_registration(rng, center.city.uf),
                ie_indicator=1,
                email=f"fiscal@{_ascii_slug(trade_name).replace('.', '')}.com.br",
            )
            amazon = Party(
                document=make_cnpj(amazon_root, 10 + FULFILLMENT_CENTERS.index(center)),
                name=catalog.AMAZON_FC_NAME,
                trade_name=catalog.AMAZON_FC_TRADE_NAME,
                address=address,
                state_registration=_state_registration(rng, center.city.uf),
                ie_indicator=1,
            )
            self._sites.append(_Site(center, seller, amazon))

    @property
    def seller(self) -> Party:
        """Return the seller's main fulfillment-center branch (the usual NF-e issuer)."""
        return self._sites[0].seller

    def day(self, day: date, spec: DayCount) -> list[Invoice]:
        """Generate one day's invoices, in time order, numbering them after earlier days."""
        rng = random.Random(f"{self.seed}/day/{day.isoformat()}")
        count = resolve_day_count(spec, day, rng)
        midnight = datetime.combine(day, time(), tzinfo=UTC)
        offsets = sorted(rng.randrange(86_400_000) for _ in range(count))
        return [self._invoice(rng, midnight + timedelta(milliseconds=ms)) for ms in offsets]

    def extra(
        self, when: datetime, *, status: str | None = None, invoice_type: str | None = None
    ) -> Invoice:
        """Generate one more invoice at an exact time (for boundary tests)."""
        self._extra_count += 1
        rng = random.Random(f"{self.seed}/extra/{self._extra_count}")
        moment = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        moment = moment.astimezone(UTC)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if invoice_type is not None and invoice_type not in KINDS_BY_TYPE:
            known = ", ".join(KINDS_BY_TYPE)
            raise ValueError(f"cannot generate invoice type {invoice_type!r} (known: {known})")
        kind = KINDS_BY_TYPE[invoice_type] if invoice_type else None
        return self._invoice(rng, moment, status=status, kind=kind)

    def _next_number(self, issuer: str, series: int) -> int:
        """Return the next nNF of an issuer's series; each series starts at a seeded number."""
        key = (issuer, series)
        if key not in self._counters:
            start = random.Random(f"{self.seed}/start/{issuer}/{series}").randint(1_000, 250_000)
            self._counters[key] = start
        self._counters[key] += 1
        return self._counters[key]

    def _invoice(
        self,
        rng: random.Random,
        when: datetime,
        *,
        status: str | None = None,
        kind: Kind | None = None,
    ) -> Invoice:
        """Build one invoice issued at `when`."""
        kind = kind or rng.choices(KINDS, weights=[k.weight for k in KINDS])[0]
        site = rng.choices(self._sites, weights=[s.center.weight for s in self._sites])[0]
        if kind.from_amazon:
            issuer, recipient = site.amazon, site.seller
        else:
            issuer, recipient = site.seller, self._customer(rng)
        series = rng.choices((1, 2, 3), weights=SERIES_WEIGHTS)[0]
        number = self._next_number(issuer.document, series)
        order_id = f"701-{_digits(rng, 7)}-{_digits(rng, 7)}" if not kind.from_amazon else ""
        nfe = self._nfe(rng, kind, issuer, recipient, series, number, when, order_id)
        invoice_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        transaction_ids = tuple(
            TransactionId(name, _transaction_id(rng, name)) for name in kind.identifiers
        )
        if status is None:
            status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
        invoice = Invoice(
            id=invoice_id,
            date=when,
            invoice_type=kind.invoice_type,
            transaction_type=kind.transaction_type,
            transaction_ids=transaction_ids,
            nfe=nfe,
            status="AUTHORIZED",
            protocol=_authorized_protocol(rng, nfe),
            order_id=order_id,
        )
        if status != "AUTHORIZED":
            apply_status(invoice, status, rng=rng)
        return invoice

    def _customer(self, rng: random.Random) -> Party:
        """Draw a customer: mostly people (CPF), some companies (CNPJ, some with an IE)."""
        city = rng.choices(CITIES, weights=CITY_WEIGHTS)[0]
        first = rng.choice(catalog.FIRST_NAMES)
        surname, surname2 = rng.sample(catalog.SURNAMES, 2)
        address = Address(
            street=rng.choice(catalog.STREETS),
            number=str(rng.randint(1, 3999)),
            complement=rng.choice(catalog.COMPLEMENTS),
            district=rng.choice(city.districts),
            city_code=city.code,
            city=city.name,
            uf=city.uf,
            cep=city.cep_prefix + _digits(rng, 8 - len(city.cep_prefix)),
            phone=_phone(rng, city),
        )
        if rng.random() < 0.85:
            name = f"{first} {surname} {surname2}"
            first9 = _digits(rng, 9)
            while len(set(first9)) == 1:
                first9 = _digits(rng, 9)
            return Party(
                document=make_cpf(first9),
                name=name,
                address=address,
                email=f"{_ascii_slug(first)}.{_ascii_slug(surname)}@example.com.br",
            )
        name = rng.choice(catalog.COMPANY_PATTERNS).format(first=first, surname=surname)
        contributor = rng.random() < 0.6
        return Party(
            document=make_cnpj(_digits(rng, 8), 1),
            name=name,
            address=address,
            state_registration=_state_registration(rng, city.uf) if contributor else "",
            ie_indicator=1 if contributor else 9,
            email=f"compras@{_ascii_slug(surname).replace('.', '')}.com.br",
        )

    def _nfe(
        self,
        rng: random.Random,
        kind: Kind,
        issuer: Party,
        recipient: Party,
        series: int,
        number: int,
        when: datetime,
        order_id: str,
    ) -> NFe:
        """Build the NF-e: identification, items with taxes, totals, transport and payment."""
        origin, destination = issuer.address.uf, recipient.address.uf
        interstate = origin != destination
        if not interstate:
            cfop = kind.cfop_internal
        elif recipient.document_type == "CPF" or recipient.ie_indicator != 1:
            cfop = kind.cfop_interstate_person
        else:
            cfop = kind.cfop_interstate_company
        icms_rate = (
            catalog.interstate_icms_rate(origin, destination)
            if interstate
            else STATES[origin].icms_rate
        )
        count = rng.choices(range(1, 6), weights=ITEM_COUNT_WEIGHTS)[0]
        products = rng.sample(catalog.PRODUCTS, count)
        freight_total = ZERO
        if kind.invoice_type == "SHIPMENT" and rng.random() < 0.3:
            freight_total = _money(rng, Decimal(9), Decimal(39))
        lines = [_line(rng, kind, product) for product in products]
        freights = _split(freight_total, [line.gross for line in lines])
        items = tuple(
            _item(n, kind, line, cfop, freight, icms_rate)
            for n, (line, freight) in enumerate(zip(lines, freights, strict=True), start=1)
        )
        totals = Totals.of(items)
        weight = sum((ln.product.weight_kg * ln.quantity for ln in lines), Decimal("0.000"))
        if kind.invoice_type == "SHIPMENT":
            payment = Payment(
                rng.choices(("03", "17", "15"), weights=(60, 30, 10))[0], totals.invoice_total
            )
            carrier = rng.choice(catalog.CARRIERS)
            transport = Transport("0", carrier, make_cnpj(_digits(rng, 8), 1), count, weight)
        else:
            payment = Payment("90", ZERO)
            transport = Transport(
                "9" if kind.from_amazon else "0", volumes=count, gross_weight_kg=weight
            )
        numeric_code = rng.randint(10_000_000, 99_999_999)
        uf_code = STATES[origin].code
        local = when.astimezone(BRAZIL_TZ)
        access_key = make_access_key(
            uf_code=uf_code,
            issued_on=local.date(),
            cnpj=issuer.document,
            series=series,
            number=number,
            numeric_code=numeric_code,
        )
        referenced: tuple[str, ...] = ()
        if kind.purpose == 4:
            earlier = (local - timedelta(days=rng.randint(3, 40))).date()
            referenced = (
                make_access_key(
                    uf_code=uf_code,
                    issued_on=earlier,
                    cnpj=issuer.document,
                    series=series,
                    number=max(1, number - rng.randint(10, 5_000)),
                    numeric_code=rng.randint(10_000_000, 99_999_999),
                ),
            )
        return NFe(
            access_key=access_key,
            numeric_code=numeric_code,
            uf_code=uf_code,
            nature_of_operation=kind.nature,
            model="55",
            series=series,
            number=number,
            issued_at=when,
            direction=kind.direction,
            destination=2 if interstate else 1,
            city_code=issuer.address.city_code,
            purpose=kind.purpose,
            final_consumer=0 if recipient.ie_indicator == 1 else 1,
            presence=2 if kind.invoice_type == "SHIPMENT" else 9,
            issuer=issuer,
            recipient=recipient,
            items=items,
            totals=totals,
            transport=transport,
            payment=payment,
            additional_info=_additional_info(kind, order_id),
            referenced_keys=referenced,
        )


@dataclass(frozen=True)
class _Line:
    """A product line before taxes."""

    product: catalog.Product
    quantity: Decimal
    unit_value: Decimal
    gross: Decimal
    discount: Decimal


def _line(rng: random.Random, kind: Kind, product: catalog.Product) -> _Line:
    """Draw quantity, price and (for some sales) a discount for one product."""
    quantity = Decimal(rng.choices((1, 2, 3, 5), weights=(75, 15, 7, 3))[0]).quantize(QUANTITY)
    unit_value = _money(rng, product.min_price, product.max_price)
    gross = (quantity * unit_value).quantize(CENT)
    discount = ZERO
    if kind.invoice_type == "SHIPMENT" and rng.random() < 0.3:
        discount = _percent(gross, Decimal(rng.randint(5, 15)))
    return _Line(product, quantity, unit_value, gross, discount)


def _transaction_id(rng: random.Random, name: str) -> str:
    """Return a BUSINESS_TRANSACTION_ID (a UUID) or an FBA SHIPMENT_ID (D + 8 characters)."""
    if name == "SHIPMENT_ID":
        return "D" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(8))
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _split(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split an amount over lines in proportion to weights; the shares add up to it exactly."""
    whole = sum(weights, ZERO)
    if ZERO in (total, whole):
        return [ZERO for _ in weights]
    shares = [(total * w / whole).quantize(CENT, rounding=ROUND_DOWN) for w in weights]
    shares[-1] += total - sum(shares, ZERO)
    return shares


def _item(
    number: int, kind: Kind, line: _Line, cfop: str, freight: Decimal, icms_rate: Decimal
) -> Item:
    """Compute one det line's taxes: ICMS on goods + freight, PIS/COFINS on goods."""
    net = line.gross - line.discount
    if kind.taxed:
        icms_cst, icms_base, rate = "00", net + freight, icms_rate.quantize(CENT)
        pis_base, pis_rate, cofins_rate = net, PIS_RATE, COFINS_RATE
    else:
        icms_cst, icms_base, rate = "41", ZERO, ZERO
        pis_base, pis_rate, cofins_rate = ZERO, ZERO, ZERO
    return Item(
        number=number,
        product_code=line.product.sku,
        ean=line.product.ean,
        description=line.product.description,
        ncm=line.product.ncm,
        cfop=cfop,
        unit=line.product.unit,
        quantity=line.quantity,
        unit_value=line.unit_value,
        gross_value=line.gross,
        discount=line.discount,
        freight=freight,
        icms_origin=line.product.origin,
        icms_cst=icms_cst,
        icms_base=icms_base,
        icms_rate=rate,
        icms_value=_percent(icms_base, rate),
        pis_cst=kind.pis_cst,
        pis_base=pis_base,
        pis_rate=pis_rate,
        pis_value=_percent(pis_base, pis_rate),
        cofins_cst=kind.pis_cst,
        cofins_base=pis_base,
        cofins_rate=cofins_rate,
        cofins_value=_percent(pis_base, cofins_rate),
        asin=line.product.asin,
    )


def _additional_info(kind: Kind, order_id: str) -> str:
    """Return infCpl, the free text SEFAZ prints on the DANFE."""
    if kind.from_amazon:
        return "Mercadoria depositada em armazém geral. Não incidência de ICMS conforme legislação."
    if kind.purpose == 4:
        return f"Devolução referente ao pedido Amazon nº {order_id}."
    return f"Pedido Amazon nº {order_id}. Operação realizada por intermédio de marketplace."


def _protocol_number(rng: random.Random, nfe: NFe) -> str:
    """Return a 15-digit nProt: 1, the state code, the year, then 10 digits."""
    return f"1{nfe.uf_code:02d}{nfe.issued_at:%y}{_digits(rng, 10)}"


def _authorized_protocol(rng: random.Random, nfe: NFe) -> Protocol:
    """Return the protNFe of an authorized NF-e (cStat 100), received seconds after issuance."""
    return Protocol(
        number=_protocol_number(rng, nfe),
        status_code=catalog.AUTHORIZED_CSTAT,
        reason=catalog.AUTHORIZED_REASON,
        received_at=nfe.issued_at + timedelta(seconds=rng.randint(1, 30)),
        digest=base64.b64encode(rng.randbytes(20)).decode(),
    )


def apply_status(
    invoice: Invoice,
    status: str,
    *,
    rng: random.Random | None = None,
    error_code: str = "",
    gov_response: str = "",
    at: datetime | None = None,
) -> None:
    """Move an invoice to a status, keeping its API fields and NF-e protocol/events coherent.

    REJECTED and DENIED carry errorCode/govResponse (drawn from real SEFAZ rejections unless
    given); CANCELED keeps the authorization and adds a cancellation event at `at`.
    """
    rng = rng or random.Random(f"{invoice.id}/{status}")
    protocol = invoice.protocol
    if protocol.status_code != catalog.AUTHORIZED_CSTAT:
        protocol = _authorized_protocol(rng, invoice.nfe)
    invoice.cancellation = None
    invoice.error_code = invoice.gov_response = ""
    if status in ("REJECTED", "DENIED"):
        known = catalog.REJECTIONS if status == "REJECTED" else catalog.DENIALS
        if not error_code:
            error_code, gov_response = rng.choice(known)
        gov_response = gov_response or dict(known).get(error_code, "")
        invoice.error_code, invoice.gov_response = error_code, gov_response
        protocol = replace(protocol, number="", status_code=error_code, reason=gov_response)
        if status == "DENIED":
            protocol = replace(protocol, number=_protocol_number(rng, invoice.nfe))
    elif status == "PENDING":
        protocol = replace(protocol, number="", status_code="105", reason="Lote em processamento")
    elif status == "CANCELED":
        moment = at or invoice.date + timedelta(minutes=rng.randint(10, 20 * 60))
        invoice.cancellation = Cancellation(
            protocol_number=_protocol_number(rng, invoice.nfe),
            at=moment.astimezone(UTC),
            justification=rng.choice(catalog.CANCELLATION_REASONS),
        )
    invoice.protocol = protocol
    invoice.status = status
