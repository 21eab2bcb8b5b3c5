"""Every checklist item by its id: the 13 of the checklist and the type-specific ones.

Kept apart from :mod:`interlock.check.items` (the 13) and
:mod:`interlock.check.types` (the ``type.*`` items, built on ``Item``) so
that neither has to import the other to answer a look-up.
"""

from __future__ import annotations

from typing import Final

from interlock.check.items import ITEMS, Item
from interlock.check.types import TYPE_ITEMS

__all__ = ["item"]

_BY_ID: Final = {i.id: i for i in (*ITEMS, *TYPE_ITEMS)}


def item(item_id: str) -> Item:
    """The item ``item_id`` (a checklist item, or a ``type.*`` one); KeyError when unknown."""
    return _BY_ID[item_id]
