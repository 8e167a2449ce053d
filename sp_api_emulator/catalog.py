"""Reference data the generator draws from: attribute options, states, cities, people, products.

Everything here is plain data (no logic beyond lookups), so the realism of the data set can be
reviewed and extended in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .brazil import ean13

MARKETPLACE_ID = "A2Q3Y263D00KWC"

# --- getInvoicesAttributes options (value, description). Every value used by the generator is
# listed; some listed values (DENIED, PENDING, REMOTE_SHIPMENT...) are never generated. ---

INVOICE_STATUS_OPTIONS: tuple[tuple[str, str], ...] = (
    ("AUTHORIZED", "The government authorized the invoice."),
    ("REJECTED", "The government rejected the invoice."),
    ("CANCELED", "The invoice is canceled."),
    ("DENIED", "The government denied the use of the invoice."),
    ("PENDING", "The invoice is waiting for a response from the government."),
)
INVOICE_TYPE_OPTIONS: tuple[tuple[str, str], ...] = (
    ("SHIPMENT", "Invoice for goods shipped to a customer."),
    ("RETURN", "Invoice for goods a customer returned."),
    ("SYMBOLIC_RETURN", "Symbolic return of goods stored in an Amazon fulfillment center."),
    ("REMOVAL", "Invoice for goods removed from a fulfillment center back to the seller."),
    ("REMOTE_SHIPMENT", "Invoice for goods shipped from a fulfillment center in another state."),
)
TRANSACTION_IDENTIFIER_NAME_OPTIONS: tuple[tuple[str, str], ...] = (
    ("BUSINESS_TRANSACTION_ID", "The identifier of the business transaction."),
    ("SHIPMENT_ID", "The identifier of the shipment."),
)
TRANSACTION_TYPE_OPTIONS: tuple[tuple[str, str], ...] = (
    ("CUSTOMER_SALES", "A sale to a customer."),
    ("CUSTOMER_SALES_SYMBOLIC", "The symbolic movement of goods that backs a customer sale."),
    ("CUSTOMER_RETURN", "A return from a customer."),
    ("REMOVAL_ORDER", "A removal order that sends goods back to the seller."),
    ("INBOUND_SHIPMENT", "An inbound shipment of goods to a fulfillment center."),
)

# NF-e rejections (cStat, xMotivo) the generator attaches to REJECTED invoices.
REJECTIONS: tuple[tuple[str, str], ...] = (
    ("539", "Rejeição: Duplicidade de NF-e com diferença na Chave de Acesso"),
    ("225", "Rejeição: Falha no Schema XML da NFe"),
    ("778", "Rejeição: Informado NCM inexistente"),
    ("209", "Rejeição: IE do emitente inválida"),
)
DENIALS: tuple[tuple[str, str], ...] = (
    ("301", "Uso Denegado: Irregularidade fiscal do emitente"),
    ("302", "Uso Denegado: Irregularidade fiscal do destinatário"),
)
AUTHORIZED_CSTAT = "100"
AUTHORIZED_REASON = "Autorizado o uso da NF-e"
CANCELLATION_REASONS: tuple[str, ...] = (
    "Cancelamento por desistência do comprador antes do envio",
    "Pedido cancelado a pedido do cliente; mercadoria não saiu do estoque",
    "Erro na emissão: destinatário informado incorretamente",
)


@dataclass(frozen=True)
class State:
    """A Brazilian state (UF): IBGE code, region and internal ICMS rate in percent."""

    uf: str
    code: int
    name: str
    region: str
    icms_rate: Decimal


STATES: dict[str, State] = {
    s.uf: s
    for s in (
        State("SP", 35, "São Paulo", "SE", Decimal(18)),
        State("RJ", 33, "Rio de Janeiro", "SE", Decimal(20)),
        State("MG", 31, "Minas Gerais", "SE", Decimal(18)),
        State("ES", 32, "Espírito Santo", "SE", Decimal(17)),
        State("PR", 41, "Paraná", "S", Decimal("19.5")),
        State("SC", 42, "Santa Catarina", "S", Decimal(17)),
        State("RS", 43, "Rio Grande do Sul", "S", Decimal(17)),
        State("BA", 29, "Bahia", "NE", Decimal("20.5")),
        State("PE", 26, "Pernambuco", "NE", Decimal("20.5")),
        State("CE", 23, "Ceará", "NE", Decimal(20)),
        State("PB", 25, "Paraíba", "NE", Decimal(20)),
        State("MA", 21, "Maranhão", "NE", Decimal(22)),
        State("GO", 52, "Goiás", "CO", Decimal(19)),
        State("DF", 53, "Distrito Federal", "CO", Decimal(20)),
        State("AM", 13, "Amazonas", "N", Decimal(20)),
        State("PA", 15, "Pará", "N", Decimal(19)),
    )
}


def interstate_icms_rate(origin: str, destination: str) -> Decimal:
    """Return the ICMS rate of a sale between two states (7% from S/SE to the rest, else 12%)."""
    south_southeast = {"S", "SE"}
    origin_rich = STATES[origin].region in south_southeast and origin != "ES"
    destination_rich = STATES[destination].region in south_southeast and destination != "ES"
    return Decimal(7) if origin_rich and not destination_rich else Decimal(12)


@dataclass(frozen=True)
class City:
    """A municipality: IBGE code (cMun), name, UF, CEP prefix and a few neighbourhoods."""

    code: str
    name: str
    uf: str
    cep_prefix: str
    districts: tuple[str, ...]


CITIES: tuple[City, ...] = (
    City("3550308", "São Paulo", "SP", "0", ("Vila Mariana", "Jardim Paulista", "Mooca")),
    City("3509502", "Campinas", "SP", "130", ("Cambuí", "Taquaral", "Barão Geraldo")),
    City("3548500", "Santos", "SP", "110", ("Gonzaga", "Boqueirão", "Ponta da Praia")),
    City("3543402", "Ribeirão Preto", "SP", "140", ("Jardim Irajá", "Centro", "Vila Seixas")),
    City("3304557", "Rio de Janeiro", "RJ", "2", ("Copacabana", "Tijuca", "Botafogo")),
    City("3303302", "Niterói", "RJ", "240", ("Icaraí", "Santa Rosa", "São Francisco")),
    City("3106200", "Belo Horizonte", "MG", "30", ("Savassi", "Funcionários", "Pampulha")),
    City("3170206", "Uberlândia", "MG", "384", ("Santa Mônica", "Centro", "Tibery")),
    City("3205309", "Vitória", "ES", "290", ("Praia do Canto", "Jardim da Penha", "Centro")),
    City("4106902", "Curitiba", "PR", "80", ("Água Verde", "Batel", "Boqueirão")),
    City("4113700", "Londrina", "PR", "860", ("Gleba Palhano", "Centro", "Jardim Higienópolis")),
    City("4205407", "Florianópolis", "SC", "880", ("Trindade", "Itacorubi", "Canasvieiras")),
    City("4209102", "Joinville", "SC", "892", ("América", "Glória", "Saguaçu")),
    City("4314902", "Porto Alegre", "RS", "90", ("Moinhos de Vento", "Menino Deus", "Petrópolis")),
    City("2927408", "Salvador", "BA", "40", ("Barra", "Pituba", "Rio Vermelho")),
    City("2611606", "Recife", "PE", "50", ("Boa Viagem", "Casa Forte", "Graças")),
    City("2304400", "Fortaleza", "CE", "60", ("Aldeota", "Meireles", "Benfica")),
    City("2507507", "João Pessoa", "PB", "580", ("Tambaú", "Manaíra", "Bessa")),
    City("2111300", "São Luís", "MA", "650", ("Renascença", "Cohama", "São Francisco")),
    City("5208707", "Goiânia", "GO", "74", ("Setor Bueno", "Setor Marista", "Jardim Goiás")),
    City("5300108", "Brasília", "DF", "70", ("Asa Sul", "Asa Norte", "Lago Sul")),
    City("1302603", "Manaus", "AM", "690", ("Adrianópolis", "Ponta Negra", "Flores")),
    City("1501402", "Belém", "PA", "660", ("Nazaré", "Umarizal", "Marco")),
)
# How often a customer lives in each city (same order as CITIES): the south-east dominates.
CITY_WEIGHTS: tuple[int, ...] = (
    30,
    6,
    3,
    3,
    14,
    3,
    7,
    2,
    2,
    5,
    2,
    2,
    2,
    5,
    4,
    4,
    3,
    1,
    1,
    2,
    3,
    2,
    2,
)


@dataclass(frozen=True)
class FulfillmentCenter:
    """An Amazon fulfillment center the seller's goods ship from (its branch address)."""

    code: str
    street: str
    number: str
    district: str
    city: City
    cep: str
    weight: int


FULFILLMENT_CENTERS: tuple[FulfillmentCenter, ...] = (
    FulfillmentCenter(
        "GRU5",
        "Avenida Antônio Cândido Machado",
        "3100",
        "Jardim São João",
        City("3509205", "Cajamar", "SP", "077", ("Jardim São João",)),
        "07776000",
        60,
    ),
    FulfillmentCenter(
        "CNF1",
        "Rodovia Fernão Dias, km 492",
        "S/N",
        "Distrito Industrial Paulo Camilo",
        City("3106705", "Betim", "MG", "326", ("Distrito Industrial Paulo Camilo",)),
        "32669000",
        15,
    ),
    FulfillmentCenter(
        "REC1",
        "Rodovia BR-101 Sul, km 84",
        "S/N",
        "Ponte dos Carvalhos",
        City("2602902", "Cabo de Santo Agostinho", "PE", "545", ("Ponte dos Carvalhos",)),
        "54590000",
        12,
    ),
    FulfillmentCenter(
        "POA1",
        "Rodovia BR-386, km 435",
        "S/N",
        "Berto Círio",
        City("4313375", "Nova Santa Rita", "RS", "924", ("Berto Círio",)),
        "92480000",
        8,
    ),
    FulfillmentCenter(
        "BSB1",
        "Setor de Indústria e Abastecimento, Trecho 3",
        "Lote 625",
        "Guará",
        City("5300108", "Brasília", "DF", "712", ("Guará",)),
        "71200030",
        5,
    ),
)

FIRST_NAMES: tuple[str, ...] = (
    "João",
    "José",
    "Antônio",
    "Sebastião",
    "Luís",
    "Gonçalo",
    "Cecília",
    "Maria da Conceição",
    "Ana Luíza",
    "Fátima",
    "Lúcia",
    "Inês",
    "Márcio",
    "Flávio",
    "Vitória",
    "Iara",
    "Raíssa",
    "Bárbara",
    "Júlio César",
    "Simão",
)
SURNAMES: tuple[str, ...] = (
    "Araújo",
    "Conceição",
    "Gonçalves",
    "Simões",
    "Magalhães",
    "Brandão",
    "Falcão",
    "Assunção",
    "Guimarães",
    "Peçanha",
    "Romão",
    "Damião",
    "Nóbrega",
    "Estêvão",
    "Silva",
    "Souza",
    "Fernandes",
    "Lopes",
    "Ribeiro",
    "Conceição Pereira",
)
COMPANY_PATTERNS: tuple[str, ...] = (
    "Comércio de Utilidades {surname} Ltda.",
    "Padaria e Confeitaria São {first} ME",
    "Distribuidora {surname} & Filhos Ltda.",
    "Papelaria Ação {surname} EIRELI",
    "Clínica Veterinária {surname} Ltda.",
)
STREETS: tuple[str, ...] = (
    "Rua da Consolação",
    "Avenida Paulista",
    "Rua São Bento",
    "Travessa da Conceição",
    "Avenida Getúlio Vargas",
    "Rua Marechal Deodoro",
    "Rua Dom Pedro II",
    "Avenida Brigadeiro Faria Lima",
    "Rua Açaí",
    "Alameda dos Ipês",
    "Rua Tiradentes",
    "Avenida João Pessoa",
)
COMPLEMENTS: tuple[str, ...] = ("", "", "", "Apto 12", "Apto 304 Bloco B", "Casa 2", "Sala 1101")
SELLER_NAME_PATTERNS: tuple[tuple[str, str], ...] = (
    ("Comercial {surname} Importação e Exportação Ltda.", "Casa {surname}"),
    ("{surname} & {surname2} Comércio Eletrônico Ltda.", "Loja {surname}"),
    ("Empório {surname} Distribuição S.A.", "Empório {surname}"),
)
CARRIERS: tuple[str, ...] = ("Amazon Logística Emulada Ltda.", "Transportadora Águia Dourada Ltda.")
AMAZON_FC_NAME = "Armazém Geral Amazon Emulado Ltda."
AMAZON_FC_TRADE_NAME = "Amazon FBA"


@dataclass(frozen=True)
class Product:
    """A catalog product: SKU, ASIN, GTIN, description, NCM, ICMS origin and price range."""

    sku: str
    asin: str
    ean: str
    description: str
    ncm: str
    origin: str
    unit: str
    min_price: Decimal
    max_price: Decimal
    weight_kg: Decimal


def _product(
    i: int, sku: str, description: str, ncm: str, origin: str, low: str, high: str, kg: str
) -> Product:
    """Build a product with a deterministic ASIN and a valid Brazilian (789) EAN-13."""
    return Product(
        sku=sku,
        asin=f"B0{i:02d}EMU{i * 37 % 1000:03d}",
        ean=ean13(f"7891234{i:05d}"),
        description=description,
        ncm=ncm,
        origin=origin,
        unit="UN",
        min_price=Decimal(low),
        max_price=Decimal(high),
        weight_kg=Decimal(kg),
    )


PRODUCTS: tuple[Product, ...] = (
    _product(
        1,
        "FON-BT-001",
        "Fone de Ouvido Bluetooth com Cancelamento de Ruído",
        "85183000",
        "2",
        "149.90",
        "499.90",
        "0.350",
    ),
    _product(
        2,
        "GAR-TER-1L",
        "Garrafa Térmica Aço Inoxidável 1L",
        "96170010",
        "0",
        "59.90",
        "129.90",
        "0.600",
    ),
    _product(
        3,
        "CAF-ELE-220",
        "Cafeteira Elétrica Programável 220V",
        "85167100",
        "0",
        "189.00",
        "349.00",
        "2.100",
    ),
    _product(
        4,
        "LIV-MPBC",
        "Livro: Memórias Póstumas de Brás Cubas (Edição de Bolso)",
        "49019900",
        "0",
        "19.90",
        "39.90",
        "0.250",
    ),
    _product(
        5,
        "TEN-COR-42",
        "Tênis de Corrida Masculino Amortecimento Máximo nº 42",
        "64041100",
        "0",
        "199.90",
        "599.90",
        "0.900",
    ),
    _product(
        6,
        "PAN-PRE-45",
        "Panela de Pressão Alumínio 4,5L com Válvula de Segurança",
        "76151000",
        "0",
        "99.90",
        "219.90",
        "1.800",
    ),
    _product(
        7,
        "CAR-POR-10K",
        "Carregador Portátil 10.000mAh USB-C",
        "85076000",
        "2",
        "79.90",
        "189.90",
        "0.250",
    ),
    _product(
        8,
        "CAD-ESC-ERG",
        "Cadeira de Escritório Ergonômica com Apoio Lombar",
        "94013000",
        "0",
        "599.00",
        "1499.00",
        "14.500",
    ),
    _product(
        9,
        "LEN-ALG-QN",
        "Jogo de Lençóis Algodão Egípcio Queen 400 Fios",
        "63022100",
        "0",
        "159.90",
        "389.90",
        "1.200",
    ),
    _product(
        10,
        "OCU-SOL-POL",
        "Óculos de Sol Polarizado Proteção UV400",
        "90041000",
        "2",
        "89.90",
        "299.90",
        "0.150",
    ),
    _product(
        11,
        "RAC-CAO-15",
        "Ração Premium para Cães Adultos Sabor Frango 15kg",
        "23091000",
        "0",
        "159.90",
        "289.90",
        "15.200",
    ),
    _product(
        12,
        "PRO-SOL-50",
        "Protetor Solar FPS 50 Loção Não Oleosa 200ml",
        "33049990",
        "0",
        "39.90",
        "89.90",
        "0.230",
    ),
    _product(
        13,
        "CAM-SEG-WIFI",
        "Câmera de Segurança Wi-Fi Visão Noturna 1080p",
        "85258929",
        "2",
        "129.90",
        "329.90",
        "0.450",
    ),
    _product(
        14,
        "CAF-GRA-1K",
        "Café Torrado em Grãos Especial Sul de Minas 1kg",
        "09012100",
        "0",
        "49.90",
        "119.90",
        "1.050",
    ),
    _product(
        15,
        "QUE-CAB-500",
        "Quebra-Cabeça 500 Peças Paisagens do Brasil",
        "95030099",
        "0",
        "39.90",
        "99.90",
        "0.500",
    ),
    _product(
        16,
        "REL-INT-AGU",
        "Relógio Inteligente à Prova d'Água com Monitor Cardíaco",
        "91021900",
        "2",
        "199.90",
        "899.90",
        "0.120",
    ),
    _product(
        17,
        "ESC-DEN-ELE",
        "Escova de Dentes Elétrica Recarregável com 3 Refis",
        "85098000",
        "2",
        "119.90",
        "349.90",
        "0.400",
    ),
    _product(
        18,
        "MOC-NOT-IMP",
        'Mochila Impermeável para Notebook até 15,6"',
        "42029200",
        "0",
        "129.90",
        "279.90",
        "0.800",
    ),
)
