"""CSV cells that a spreadsheet will not run as formulas.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel, LibreOffice
and Google Sheets (`=HYPERLINK(...)` in a model name or a label sends whoever opens the export to a URL
of the writer's choosing). Such a cell gets a leading `'`, which the spreadsheet shows as text, as OWASP's
"CSV Injection" page recommends. Numbers are not text and stay as they are, negative ones included.
"""
import csv
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell_neutralize(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row_neutralize(row: Iterable[Any]) -> list[Any]:
    return [csv_cell_neutralize(value) for value in row]


class SafeWriter:
    """csv.writer whose rows are neutralized; every CSV export of the portal writes through this or SafeDictWriter."""

    def __init__(self, out, **kwargs):
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(csv_row_neutralize(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeDictWriter(csv.DictWriter):
    """csv.DictWriter whose values are neutralized (the header is ours and stays as written)."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: csv_cell_neutralize(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for rowdict in rowdicts:
            self.writerow(rowdict)
