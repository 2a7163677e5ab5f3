"""Address search for `GET /v1/addresses?q=`: every word of the query, in any order, case and accents
ignored ('makitie karhula' finds 'Mäkitie & Puistotie, Karhula')."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def fold(text: str) -> str:
    """Lower case without diacritics: what a user types on any keyboard."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class AddressIndex:
    """Folded address texts, searched by word containment (a few thousand rows: a scan is instant)."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self.folded = [fold(a) for a in addresses]

    def search(self, query: str) -> list[int]:
        """Rows whose address contains every word of `query`; all rows for an empty query."""
        words = fold(query).replace(",", " ").replace("&", " ").split()
        if not words:
            return list(range(len(self.folded)))
        return [row for row, text in enumerate(self.folded) if all(w in text for w in words)]
