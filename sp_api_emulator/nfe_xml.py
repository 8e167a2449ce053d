"""NF-e 4.00 writer: renders an invoice of the data set as the `nfeProc` file an export ZIP holds.

Strings are built directly (no DOM) because an export of tens of thousands of invoices is
rendered on demand. Values come from the invoice model, Decimals formatted exactly (2 decimals
for money, 4 for quantities and unit values); fields the model lacks (CEST, signature, software
versions...) are derived deterministically from it, so the same invoice always gives the same
bytes. Files are UTF-8 by default; `encoding_for` picks ISO-8859-1 or a UTF-8 BOM for some
invoices, so a connector's decoding is exercised on realistic variations.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from .brazil import make_cnpj
from .models import BRAZIL_TZ, Address, Invoice, Item, NFe, Party, Protocol

# Namespace and algorithm names are URIs that name, not URLs to fetch: http:// is their spelling.
NAMESPACE = "http://www.portalfiscal.inf.br/nfe"  # ignore-https-check
DSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"  # ignore-https-check
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"  # ignore-https-check
VERSION = "4.00"
UTF8, ISO_8859_1, UTF8_BOM = "utf-8", "iso-8859-1", "utf-8-sig"
ENCODINGS = (UTF8, ISO_8859_1, UTF8_BOM)
_DECLARED = {UTF8: "UTF-8", ISO_8859_1: "ISO-8859-1", UTF8_BOM: "UTF-8"}
SOFTWARE_VERSION = "AmazonFBA-NFe 4.2.7"
MARKETPLACE_CNPJ = make_cnpj("15436940", 1)  # infIntermed: the marketplace (intermediary)
TECH_RESPONSIBLE = (make_cnpj("11222333", 1), "Equipe Fiscal Emulada", "nfe@emulador.com.br")
# CEST exists only for goods under tax substitution; a few catalog NCMs carry one.
CEST_BY_NCM = {
    "85183000": "2106400",
    "85076000": "2100900",
    "85167100": "2105600",
    "85258929": "2105000",
    "85098000": "2104700",
    "33049990": "2003700",
    "23091000": "2200200",
}
SEFAZ_APPLICATION = {"SP": "SP_NFE_PL009_V4", "MG": "MG-PL_009_V4", "PR": "PR-v4_8_12"}
PAYMENT_WITH_CARD = frozenset({"03", "04", "17"})
# Standard texts sellers append to infCpl; used to give every file a realistic size.
FOOTER = (
    "Trocas e devoluções em até 7 (sete) dias corridos a contar do recebimento, conforme o "
    "art. 49 do Código de Defesa do Consumidor (Lei nº 8.078/1990). Mercadoria armazenada e "
    "expedida por centro de distribuição de terceiros (armazém geral) por conta e ordem do "
    "emitente. Dúvidas, reclamações e solicitações de segunda via: Atendimento ao Cliente pelo "
    "site do marketplace, seção Meus Pedidos. Documento emitido por contribuinte do ICMS; não "
    "gera direito a crédito fiscal de IPI. Os valores de tributos informados são aproximados "
    "e calculados conforme a Lei nº 12.741/2012 (Lei da Transparência Fiscal)."
)


def encoding_for(invoice_id: str) -> str:
    """Pick a file encoding for an invoice, deterministically: mostly UTF-8, 1 in 8 ISO-8859-1
    and 1 in 8 UTF-8 with a BOM (the mix of encodings real exports show)."""
    bucket = hashlib.sha256(invoice_id.encode()).digest()[0] % 8
    return ISO_8859_1 if bucket == 0 else UTF8_BOM if bucket == 1 else UTF8


def render(invoice: Invoice, encoding: str = UTF8) -> bytes:
    """Return the nfeProc file of an invoice in one of ENCODINGS (declared in the prolog)."""
    if encoding not in _DECLARED:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    head = f'<?xml version="1.0" encoding="{_DECLARED[encoding]}"?>'
    text = head + document(invoice)
    if encoding == ISO_8859_1:
        return text.encode(ISO_8859_1, errors="xmlcharrefreplace")
    return text.encode(encoding)


def document(invoice: Invoice) -> str:
    """Return the nfeProc element (no XML declaration) as text."""
    nfe = invoice.nfe
    key = nfe.access_key
    info = _info_nfe(invoice, nfe, key)
    signature = _signature(key, invoice.protocol.digest, nfe.issuer.document)
    protocol = _protocol(invoice.protocol, nfe, key)
    return (
        f'<nfeProc xmlns="{NAMESPACE}" versao="{VERSION}"><NFe xmlns="{NAMESPACE}">'
        f"{info}{signature}</NFe>{protocol}</nfeProc>"
    )


# --- text and numbers ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def escape(text: str) -> str:
    """Escape text for element content and double-quoted attributes (cached: names repeat)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if '"' in text:
        text = text.replace('"', "&quot;")
    return text


def money(value: Decimal) -> str:
    """Format a money value with 2 decimals (TDec_1302)."""
    return f"{value:.2f}"


def four(value: Decimal) -> str:
    """Format a quantity, unit value or rate with 4 decimals (TDec_1104v, TDec_0302a04)."""
    return f"{value:.4f}"


def local_time(moment: datetime) -> str:
    """Format a UTC instant in Brasília time with its offset, as dhEmi/dhRecbto want."""
    local = moment.astimezone(BRAZIL_TZ)
    return (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}T"
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}-03:00"
    )


def _digest_text(seed: str, size: int) -> str:
    """Return `size` deterministic pseudo-random bytes derived from seed, base64-encoded."""
    blocks = bytearray()
    counter = 0
    while len(blocks) < size:
        blocks += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return base64.b64encode(bytes(blocks[:size])).decode()


# --- infNFe ---------------------------------------------------------------------------------------


def _info_nfe(invoice: Invoice, nfe: NFe, key: str) -> str:
    """Return infNFe: ide, emit, dest, det*, total, transp, pag, infIntermed, infAdic..."""
    intermediated = nfe.presence == 2
    parts = [
        f'<infNFe Id="NFe{key}" versao="{VERSION}">',
        _ide(nfe, key, intermediated),
        _issuer(nfe.issuer),
        _recipient(nfe.recipient),
    ]
    parts.extend(_item(item, nfe.direction) for item in nfe.items)
    parts.append(_totals(nfe))
    parts.append(_transport(nfe))
    parts.append(_payment(nfe))
    if intermediated:
        seller_code = hashlib.sha256(nfe.issuer.document.encode()).hexdigest()[:12].upper()
        parts.append(
            f"<infIntermed><CNPJ>{MARKETPLACE_CNPJ}</CNPJ>"
            f"<idCadIntTran>A{seller_code}</idCadIntTran></infIntermed>"
        )
    parts.append(f"<infAdic><infCpl>{escape(_complement(invoice, nfe))}</infCpl></infAdic>")
    cnpj, contact, email = TECH_RESPONSIBLE
    parts.append(
        f"<infRespTec><CNPJ>{cnpj}</CNPJ><xContato>{contact}</xContato>"
        f"<email>{email}</email><fone>1140028922</fone></infRespTec></infNFe>"
    )
    return "".join(parts)


def _ide(nfe: NFe, key: str, intermediated: bool) -> str:
    """Return ide, the identification group (NFref for returns)."""
    references = "".join(f"<NFref><refNFe>{ref}</refNFe></NFref>" for ref in nfe.referenced_keys)
    return (
        f"<ide><cUF>{nfe.uf_code}</cUF><cNF>{nfe.numeric_code:08d}</cNF>"
        f"<natOp>{escape(nfe.nature_of_operation)}</natOp><mod>{nfe.model}</mod>"
        f"<serie>{nfe.series}</serie><nNF>{nfe.number}</nNF>"
        f"<dhEmi>{local_time(nfe.issued_at)}</dhEmi><tpNF>{nfe.direction}</tpNF>"
        f"<idDest>{nfe.destination}</idDest><cMunFG>{nfe.city_code}</cMunFG><tpImp>1</tpImp>"
        f"<tpEmis>{nfe.emission_type}</tpEmis><cDV>{key[-1]}</cDV><tpAmb>{nfe.environment}</tpAmb>"
        f"<finNFe>{nfe.purpose}</finNFe><indFinal>{nfe.final_consumer}</indFinal>"
        f"<indPres>{nfe.presence}</indPres><indIntermed>{int(intermediated)}</indIntermed>"
        f"<procEmi>0</procEmi><verProc>{SOFTWARE_VERSION}</verProc>{references}</ide>"
    )


def _address(tag: str, address: Address) -> str:
    """Return enderEmit or enderDest."""
    complement = f"<xCpl>{escape(address.complement)}</xCpl>" if address.complement else ""
    phone = f"<fone>{address.phone}</fone>" if address.phone else ""
    return (
        f"<{tag}><xLgr>{escape(address.street)}</xLgr><nro>{escape(address.number)}</nro>"
        f"{complement}<xBairro>{escape(address.district)}</xBairro>"
        f"<cMun>{address.city_code}</cMun><xMun>{escape(address.city)}</xMun>"
        f"<UF>{address.uf}</UF><CEP>{address.cep}</CEP><cPais>{address.country_code}</cPais>"
        f"<xPais>{escape(address.country)}</xPais>{phone}</{tag}>"
    )


@lru_cache(maxsize=256)
def _issuer(party: Party) -> str:
    """Return emit (cached: a seller has a handful of branches)."""
    trade = f"<xFant>{escape(party.trade_name)}</xFant>" if party.trade_name else ""
    return (
        f"<emit><{party.document_type}>{party.document}</{party.document_type}>"
        f"<xNome>{escape(party.name)}</xNome>{trade}{_address('enderEmit', party.address)}"
        f"<IE>{party.state_registration}</IE><CRT>{party.tax_regime}</CRT></emit>"
    )


def _recipient(party: Party) -> str:
    """Return dest (IE only for contributors)."""
    registration = (
        f"<IE>{party.state_registration}</IE>"
        if party.ie_indicator == 1 and party.state_registration
        else ""
    )
    email = f"<email>{escape(party.email)}</email>" if party.email else ""
    return (
        f"<dest><{party.document_type}>{party.document}</{party.document_type}>"
        f"<xNome>{escape(party.name)}</xNome>{_address('enderDest', party.address)}"
        f"<indIEDest>{party.ie_indicator}</indIEDest>{registration}{email}</dest>"
    )


def _item(item: Item, direction: int) -> str:
    """Return one det: prod, imposto (ICMS, IPI, PIS, COFINS) and infAdProd."""
    ean = item.ean or "SEM GTIN"
    cest = CEST_BY_NCM.get(item.ncm)
    quantity, unit_value = four(item.quantity), four(item.unit_value)
    freight = f"<vFrete>{money(item.freight)}</vFrete>" if item.freight else ""
    discount = f"<vDesc>{money(item.discount)}</vDesc>" if item.discount else ""
    taxes = item.icms_value + item.pis_value + item.cofins_value
    cofins = item.cofins_value
    extra = f"<infAdProd>ASIN: {item.asin}</infAdProd>" if item.asin else ""
    return (
        f'<det nItem="{item.number}"><prod><cProd>{escape(item.product_code)}</cProd>'
        f"<cEAN>{ean}</cEAN><xProd>{escape(item.description)}</xProd><NCM>{item.ncm}</NCM>"
        f"{f'<CEST>{cest}</CEST>' if cest else ''}<CFOP>{item.cfop}</CFOP>"
        f"<uCom>{item.unit}</uCom><qCom>{quantity}</qCom><vUnCom>{unit_value}</vUnCom>"
        f"<vProd>{money(item.gross_value)}</vProd><cEANTrib>{ean}</cEANTrib>"
        f"<uTrib>{item.unit}</uTrib><qTrib>{quantity}</qTrib><vUnTrib>{unit_value}</vUnTrib>"
        f"{freight}{discount}<indTot>1</indTot></prod>"
        f"<imposto><vTotTrib>{money(taxes)}</vTotTrib>{_icms(item)}{_ipi(direction)}"
        f"{_pis_cofins('PIS', item.pis_cst, item.pis_base, item.pis_rate, item.pis_value)}"
        f"{_pis_cofins('COFINS', item.cofins_cst, item.cofins_base, item.cofins_rate, cofins)}"
        f"</imposto>{extra}</det>"
    )


def _icms(item: Item) -> str:
    """Return the ICMS group matching the CST (ICMS00 taxed; ICMS40 for CST 40/41/50)."""
    cst = item.icms_cst
    if cst == "00":
        return (
            f"<ICMS><ICMS00><orig>{item.icms_origin}</orig><CST>00</CST><modBC>3</modBC>"
            f"<vBC>{money(item.icms_base)}</vBC><pICMS>{four(item.icms_rate)}</pICMS>"
            f"<vICMS>{money(item.icms_value)}</vICMS></ICMS00></ICMS>"
        )
    if cst in ("40", "41", "50"):
        return f"<ICMS><ICMS40><orig>{item.icms_origin}</orig><CST>{cst}</CST></ICMS40></ICMS>"
    raise ValueError(f"the NF-e writer has no ICMS group for CST {cst!r}")


def _ipi(direction: int) -> str:
    """Return IPI: not taxed for a reseller (CST 53 on exits, 03 on entries)."""
    cst = "53" if direction == 1 else "03"
    return f"<IPI><cEnq>999</cEnq><IPINT><CST>{cst}</CST></IPINT></IPI>"


def _pis_cofins(tag: str, cst: str, base: Decimal, rate: Decimal, value: Decimal) -> str:
    """Return PIS or COFINS in the group its CST calls for (Aliq, NT or Outr)."""
    amounts = (
        f"<vBC>{money(base)}</vBC><p{tag}>{four(rate)}</p{tag}><v{tag}>{money(value)}</v{tag}>"
    )
    if cst in ("01", "02"):
        return f"<{tag}><{tag}Aliq><CST>{cst}</CST>{amounts}</{tag}Aliq></{tag}>"
    if cst in ("04", "05", "06", "07", "08", "09"):
        return f"<{tag}><{tag}NT><CST>{cst}</CST></{tag}NT></{tag}>"
    return f"<{tag}><{tag}Outr><CST>{cst}</CST>{amounts}</{tag}Outr></{tag}>"


def _totals(nfe: NFe) -> str:
    """Return total/ICMSTot (every value the sum of the items')."""
    t = nfe.totals
    zero = "0.00"
    taxes = t.icms_value + t.pis + t.cofins + t.ipi
    return (
        f"<total><ICMSTot><vBC>{money(t.icms_base)}</vBC><vICMS>{money(t.icms_value)}</vICMS>"
        f"<vICMSDeson>{zero}</vICMSDeson><vFCP>{zero}</vFCP><vBCST>{zero}</vBCST>"
        f"<vST>{zero}</vST><vFCPST>{zero}</vFCPST><vFCPSTRet>{zero}</vFCPSTRet>"
        f"<vProd>{money(t.products)}</vProd><vFrete>{money(t.freight)}</vFrete>"
        f"<vSeg>{money(t.insurance)}</vSeg><vDesc>{money(t.discount)}</vDesc><vII>{zero}</vII>"
        f"<vIPI>{money(t.ipi)}</vIPI><vIPIDevol>{zero}</vIPIDevol><vPIS>{money(t.pis)}</vPIS>"
        f"<vCOFINS>{money(t.cofins)}</vCOFINS><vOutro>{money(t.other)}</vOutro>"
        f"<vNF>{money(t.invoice_total)}</vNF><vTotTrib>{money(taxes)}</vTotTrib>"
        f"</ICMSTot></total>"
    )


def _transport(nfe: NFe) -> str:
    """Return transp: modFrete, the carrier when there is one, and the volumes."""
    transport = nfe.transport
    carrier = ""
    if transport.carrier_name:
        document = f"<CNPJ>{transport.carrier_cnpj}</CNPJ>" if transport.carrier_cnpj else ""
        name = escape(transport.carrier_name)
        carrier = f"<transporta>{document}<xNome>{name}</xNome></transporta>"
    volumes = ""
    if transport.volumes:
        weight = f"{transport.gross_weight_kg:.3f}"
        volumes = (
            f"<vol><qVol>{transport.volumes}</qVol><esp>CAIXA</esp>"
            f"<pesoL>{weight}</pesoL><pesoB>{weight}</pesoB></vol>"
        )
    return f"<transp><modFrete>{transport.mode}</modFrete>{carrier}{volumes}</transp>"


def _payment(nfe: NFe) -> str:
    """Return pag/detPag (card payments carry the card group, not integrated)."""
    payment = nfe.payment
    card = "<card><tpIntegra>2</tpIntegra></card>" if payment.method in PAYMENT_WITH_CARD else ""
    indicator = "<indPag>0</indPag>" if payment.method != "90" else ""
    return (
        f"<pag><detPag>{indicator}<tPag>{payment.method}</tPag>"
        f"<vPag>{money(payment.amount)}</vPag>{card}</detPag></pag>"
    )


def _complement(invoice: Invoice, nfe: NFe) -> str:
    """Return infCpl: the generator's text, the tax estimate, then standard seller notices."""
    t = nfe.totals
    taxes = t.icms_value + t.pis + t.cofins + t.ipi
    share = (taxes * 100 / t.invoice_total) if t.invoice_total else Decimal(0)
    text = (
        f"{nfe.additional_info} Valor aproximado dos tributos: R$ {money(taxes)} "
        f"({share:.2f}%). Fonte: IBPT. Chave de acesso para consulta em "
        f"www.nfe.fazenda.gov.br/portal: {nfe.access_key}."
    )
    if invoice.order_id:
        text += f" Referência do pedido no marketplace: {invoice.order_id}."
    return f"{text} {FOOTER}"


# --- signature and protocol ---------------------------------------------------------------------


@lru_cache(maxsize=256)
def _certificate(cnpj: str) -> str:
    """Return a deterministic stand-in for the issuer's e-CNPJ A1 certificate (DER, base64)."""
    return _digest_text(f"certificate/{cnpj}", 1_400)


def _signature(key: str, digest: str, cnpj: str) -> str:
    """Return the enveloped XML-DSig Signature of infNFe (DigestValue = protNFe digVal)."""
    return (
        f'<Signature xmlns="{DSIG_NAMESPACE}"><SignedInfo>'
        f'<CanonicalizationMethod Algorithm="{C14N}"/>'
        f'<SignatureMethod Algorithm="{DSIG_NAMESPACE}rsa-sha1"/>'
        f'<Reference URI="#NFe{key}"><Transforms>'
        f'<Transform Algorithm="{DSIG_NAMESPACE}enveloped-signature"/>'
        f'<Transform Algorithm="{C14N}"/></Transforms>'
        f'<DigestMethod Algorithm="{DSIG_NAMESPACE}sha1"/>'
        f"<DigestValue>{digest}</DigestValue></Reference></SignedInfo>"
        f"<SignatureValue>{_digest_text(f'signature/{key}', 256)}</SignatureValue>"
        f"<KeyInfo><X509Data><X509Certificate>{_certificate(cnpj)}</X509Certificate>"
        "</X509Data></KeyInfo></Signature>"
    )


def _protocol(protocol: Protocol, nfe: NFe, key: str) -> str:
    """Return protNFe/infProt (no nProt when SEFAZ did not authorize or deny the NF-e)."""
    application = SEFAZ_APPLICATION.get(nfe.issuer.address.uf, "SVRS202405151503")
    number = f"<nProt>{protocol.number}</nProt>" if protocol.number else ""
    return (
        f'<protNFe versao="{VERSION}"><infProt><tpAmb>{nfe.environment}</tpAmb>'
        f"<verAplic>{application}</verAplic><chNFe>{key}</chNFe>"
        f"<dhRecbto>{local_time(protocol.received_at)}</dhRecbto>{number}"
        f"<digVal>{protocol.digest}</digVal><cStat>{protocol.status_code}</cStat>"
        f"<xMotivo>{escape(protocol.reason)}</xMotivo></infProt></protNFe>"
    )
