"""Brazilian fiscal identifiers: CNPJ, CPF, NF-e access keys and EAN-13 codes.

The emulator invents documents that a strict NF-e parser must accept, so every identifier it
makes carries correct check digits. Each builder has a matching validator for tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

_CNPJ_WEIGHTS_1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_WEIGHTS_2 = (6, *_CNPJ_WEIGHTS_1)
ACCESS_KEY_LENGTH = 44
NFE_MODEL = "55"


def _mod11(digits: str, weights: Sequence[int]) -> int:
    """Return the mod-11 check digit shared by CNPJ, CPF and NF-e keys (0 when remainder < 2)."""
    total = sum(int(digit) * weight for digit, weight in zip(digits, weights, strict=True))
    remainder = total % 11
    return 0 if remainder < 2 else 11 - remainder


def cnpj_check_digits(first12: str) -> str:
    """Return the two check digits of a CNPJ whose first 12 digits are given."""
    first = _mod11(first12, _CNPJ_WEIGHTS_1)
    second = _mod11(first12 + str(first), _CNPJ_WEIGHTS_2)
    return f"{first}{second}"


def make_cnpj(root: str, branch: int) -> str:
    """Build a 14-digit CNPJ from an 8-digit company root and a branch number (0001 = HQ)."""
    if len(root) != 8 or not root.isdigit():
        raise ValueError(f"CNPJ root must be 8 digits, got {root!r}")
    first12 = f"{root}{branch:04d}"
    return first12 + cnpj_check_digits(first12)


def is_valid_cnpj(cnpj: str) -> bool:
    """Tell whether a 14-digit CNPJ (digits only) has correct check digits."""
    if len(cnpj) != 14 or not cnpj.isdigit() or len(set(cnpj)) == 1:
        return False
    return cnpj[12:] == cnpj_check_digits(cnpj[:12])


def cpf_check_digits(first9: str) -> str:
    """Return the two check digits of a CPF whose first 9 digits are given."""
    first = _mod11(first9, range(10, 1, -1))
    second = _mod11(first9 + str(first), range(11, 1, -1))
    return f"{first}{second}"


def make_cpf(first9: str) -> str:
    """Build an 11-digit CPF from 9 base digits (not all equal: such CPFs are invalid)."""
    if len(first9) != 9 or not first9.isdigit() or len(set(first9)) == 1:
        raise ValueError(f"CPF base must be 9 digits, not all equal, got {first9!r}")
    return first9 + cpf_check_digits(first9)


def is_valid_cpf(cpf: str) -> bool:
    """Tell whether an 11-digit CPF (digits only) has correct check digits."""
    if len(cpf) != 11 or not cpf.isdigit() or len(set(cpf)) == 1:
        return False
    return cpf[9:] == cpf_check_digits(cpf[:9])


def access_key_check_digit(first43: str) -> int:
    """Return the cDV of an NF-e access key: mod 11, weights 2..9 repeating from the right."""
    weights = [2 + (i % 8) for i in range(len(first43))][::-1]
    return _mod11(first43, weights)


def make_access_key(
    *,
    uf_code: int,
    issued_on: date,
    cnpj: str,
    series: int,
    number: int,
    numeric_code: int,
    emission_type: int = 1,
    model: str = NFE_MODEL,
) -> str:
    """Build the 44-digit chave de acesso: cUF AAMM CNPJ mod serie nNF tpEmis cNF cDV."""
    first43 = (
        f"{uf_code:02d}{issued_on:%y%m}{cnpj}{model}{series:03d}{number:09d}"
        f"{emission_type:01d}{numeric_code:08d}"
    )
    if len(first43) != ACCESS_KEY_LENGTH - 1:
        raise ValueError(f"access key fields do not fit 43 digits: {first43!r}")
    return first43 + str(access_key_check_digit(first43))


def is_valid_access_key(key: str) -> bool:
    """Tell whether a 44-digit access key has a correct check digit."""
    if len(key) != ACCESS_KEY_LENGTH or not key.isdigit():
        return False
    return int(key[-1]) == access_key_check_digit(key[:-1])


def ean13(first12: str) -> str:
    """Build an EAN-13 (GTIN) code by appending its check digit to 12 digits."""
    if len(first12) != 12 or not first12.isdigit():
        raise ValueError(f"EAN-13 base must be 12 digits, got {first12!r}")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return first12 + str((10 - total % 10) % 10)


def format_cnpj(cnpj: str) -> str:
    """Format a CNPJ for humans: 12.345.678/0001-95."""
    return f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"
