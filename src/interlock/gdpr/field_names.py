"""Field names that strongly suggest personal data, and the fideslang category each suggests.

One table, read by ``interlock validate`` (an untagged field that looks like
personal data of a category the integration does not declare is warned about)
and by ``interlock import-openapi`` (which proposes the category for the
operator to confirm). Only names that are personal data in almost every API are
listed: a bare ``name`` (of a product?), ``city`` or ``bic`` (a bank's code,
not a person's) are not, so they suggest nothing.

A name is compared in snake_case, lower case (``dateOfBirth``, ``Date-Of-Birth``
and ``date_of_birth`` are the same name); the pattern must match all of it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["FIELD_NAME_CATEGORIES", "leaf_name", "suggested_category"]

#: (pattern over the whole snake_case name, fideslang data category), first match wins.
FIELD_NAME_CATEGORIES: Final[tuple[tuple[str, str], ...]] = (
    (r"(\w+_)?(e_?mail|email_address|e_?mail_addr)", "user.contact.email"),
    (
        r"(\w+_)?(phone|phone_number|telephone|mobile|mobile_phone|mobile_number|cell_phone)",
        "user.contact.phone_number",
    ),
    (r"iban|bank_account(_number)?|account_iban", "user.financial.bank_account"),
    (r"birth_?date|date_of_birth|dob|birthday", "user.demographic.date_of_birth"),
    (r"first_?name|given_name|forename", "user.name.first"),
    (r"last_?name|surname|family_name", "user.name.last"),
    (r"full_?name", "user.name"),
    (r"(\w+_)?(postal_code|post_code|postcode|zip|zip_code)", "user.contact.address.postal_code"),
    (r"street(_address|_name|_line_?\d)?|address_line_?\d", "user.contact.address.street"),
    (r"(home_|postal_|billing_|shipping_|street_)?address", "user.contact.address"),
    (
        r"ssn|social_security_number|national_id(_number)?|national_identification_number",
        "user.government_id.national_identification_number",
    ),
    (r"passport(_number|_no)?", "user.government_id.passport_number"),
    (r"ip|ip_address|ip_addr|client_ip|remote_ip", "user.device.ip_address"),
)

_COMPILED: Final = tuple((re.compile(pattern), key) for pattern, key in FIELD_NAME_CATEGORIES)
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def leaf_name(path: str) -> str:
    """The last segment of a field path: ``customer.email`` -> ``email``, ``a[]`` -> ``a``."""
    return path.rsplit(".", 1)[-1].removesuffix("[]")


def suggested_category(name: str) -> str | None:
    """The fideslang category the field name ``name`` strongly suggests, or None."""
    snake = _CAMEL.sub("_", name).replace("-", "_").lower()
    for pattern, key in _COMPILED:
        if pattern.fullmatch(snake):
            return key
    return None
