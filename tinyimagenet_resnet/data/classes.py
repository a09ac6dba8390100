"""Human-readable names of the 200 Tiny ImageNet classes (the package's own copy of classes.tsv)."""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def class_table() -> list[tuple[str, str]]:
    """[(wnid, words)] indexed by label."""
    text = resources.files("tinyimagenet_resnet").joinpath("resources/classes.tsv").read_text()
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    return [(r["wnid"], r["words"]) for r in sorted(rows, key=lambda r: int(r["label"]))]


def class_name(label: int, short: bool = True) -> str:
    """'goldfish' (short: the first WordNet word) or the full word list; `#<label>` beyond the table."""
    table = class_table()
    if not 0 <= label < len(table):
        return f"#{label}"
    words = table[label][1]
    return words.split(",")[0].strip() if short else words
