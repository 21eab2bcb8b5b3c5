"""The sample ERP's records: customers and their orders, one copy per running ERP.

:data:`ORDERS` is what the order endpoints serve (the gateway tests count its
fields); :data:`CUSTOMERS` are the same people, with the identifiers a
data-subject request names them by: a customer id, an email address, a phone
number (E.164, from the UK's range reserved for drama, +44 1632 960xxx). An
order belongs to the customer whose email it carries.

:class:`ErpData` is one ERP's mutable copy: the privacy webhook
(:mod:`interlock.testing.sample_privacy`) finds, exports, erases and rectifies
a person's records in it, and the order endpoints see the result.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["CUSTOMERS", "ORDERS", "RECTIFIABLE", "ErpData"]

ORDERS: Final[dict[str, dict[str, Any]]] = {
    "1001": {
        "id": "1001",
        "status": "confirmed",
        "total": "1299.00",
        "currency": "EUR",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "tax_id": "DE811907980"},
        "internal_margin": "0.31",
    },
    "1002": {
        "id": "1002",
        "status": "shipped",
        "total": "89.90",
        "currency": "EUR",
        "customer": {"name": "Alan Turing", "email": "alan@example.com", "tax_id": "DE129273398"},
        "internal_margin": "0.12",
    },
    "1003": {
        "id": "1003",
        "status": "confirmed",
        "total": "15400.00",
        "currency": "EUR",
        "customer": {"name": "Grace Hopper", "email": "grace@example.com", "tax_id": "DE136695976"},
        "internal_margin": "0.27",
    },
}

CUSTOMERS: Final[dict[str, dict[str, Any]]] = {
    "C-0001": {
        "id": "C-0001",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+441632960001",
        "tax_id": "DE811907980",
        "address": "12 St James's Square, London",
    },
    "C-0002": {
        "id": "C-0002",
        "name": "Alan Turing",
        "email": "alan@example.com",
        "phone": "+441632960002",
        "tax_id": "DE129273398",
        "address": "78 High Street, Hampton Wick",
    },
    "C-0003": {
        "id": "C-0003",
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "phone": "+441632960003",
        "tax_id": "DE136695976",
        "address": "1 Navy Yard, Arlington",
    },
}

#: The customer fields a rectification may change (Art. 16); ids and tax ids are not among them.
RECTIFIABLE: Final = frozenset({"name", "email", "phone", "address"})
#: The identifier kinds a person can be looked up by, and the customer field each reads.
_LOOKUP: Final = {"customer_id": "id", "email": "email", "phone": "phone"}


class ErpData:
    """One ERP's customers and orders (a deep copy of the samples), changed in place."""

    def __init__(self) -> None:
        """Start from the sample records."""
        self.customers = copy.deepcopy(CUSTOMERS)
        self.orders = copy.deepcopy(ORDERS)

    @staticmethod
    def knows(kind: str) -> bool:
        """Whether a person can be looked up by identifiers of ``kind``."""
        return kind in _LOOKUP

    def find(self, kind: str, value: str) -> dict[str, Any] | None:
        """The customer with that identifier (emails compare case-insensitively), or None."""
        field = _LOOKUP[kind]
        wanted = value.casefold() if kind == "email" else value
        for customer in self.customers.values():
            found = str(customer[field])
            if (found.casefold() if kind == "email" else found) == wanted:
                return customer
        return None

    def orders_of(self, customer: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The customer's orders."""
        email = str(customer["email"]).casefold()
        return [o for o in self.orders.values() if o["customer"]["email"].casefold() == email]

    def records_of(self, customer: Mapping[str, Any]) -> dict[str, Any]:
        """What the ERP holds about the customer: the record and the orders (copies)."""
        return copy.deepcopy({"customer": dict(customer), "orders": self.orders_of(customer)})

    def erase(self, customer: Mapping[str, Any]) -> int:
        """Remove the customer and their orders; how many records went."""
        orders = self.orders_of(customer)
        for order in orders:
            del self.orders[order["id"]]
        del self.customers[customer["id"]]
        return 1 + len(orders)

    def rectify(self, customer: dict[str, Any], corrections: Mapping[str, str]) -> int:
        """Apply ``corrections`` (fields of :data:`RECTIFIABLE`) to the customer and the copy
        each order carries; how many records changed."""
        orders = self.orders_of(customer)
        customer.update(corrections)
        for order in orders:
            embedded = order["customer"]
            embedded.update({k: v for k, v in corrections.items() if k in embedded})
        return 1 + len(orders)
