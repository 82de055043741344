"""Column mappings: how a merchant's file columns become item fields and typed attributes.

A mapping is loaded from a JSON or TOML file whose top-level keys are :class:`ColumnMapping`'s
fields, e.g. (TOML)::

    price_format = "major"        # "24.99" in the file means 2499 cents; "minor" means cents already
    currency = "USD"              # for money cells without a currency column
    id_from = ["Brand", "Name"]   # no id column: item_id = slug of these columns + a short hash
    [fields]                      # our field name -> the file's column (category may list several)
    title = "Name"
    price = "Price"
    [[attributes]]                # columns kept as attributes, with an optional type
    column = "Ingredients"
    type = "str"                  # str | int | float | bool | list (default: str, "true"/"false" -> bool)
    [flags]                       # 0/1 columns folded into one list attribute
    skin_type = ["Dry", "Oily"]   # a row with Dry=1 gets skin_type = ("dry",)

>>> m = ColumnMapping.from_dict({"fields": {"item_id": "sku", "price": "Price"}, "price_format": "major"})
>>> m.to_raw({"sku": "a1", "Price": "24.99"})
{'item_id': 'a1', 'price': {'amount': 2499, 'currency': 'USD'}}
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from shopkeep.catalog.schema import FIELDS
from shopkeep.errors import ValidationError
from shopkeep.types import Money

__all__ = ["ATTRIBUTE_TYPES", "AttributeColumn", "ColumnMapping", "load_mapping"]

ATTRIBUTE_TYPES = ("str", "int", "float", "bool", "list")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})
_MONEY = ("price", "cost", "map_price")
_MAPPABLE = frozenset(FIELDS) | {"currency"}
_KEYS = frozenset({"fields", "attributes", "flags", "id_from", "price_format", "currency", "list_separator",
                   "category_separator"})
_EXPONENT = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "JOD": 3, "TND": 3}


def attribute_name(column: str) -> str:
    """The snake_case attribute name for a column (``"Skin Type"`` -> ``"skin_type"``)."""
    return re.sub(r"[^0-9a-z]+", "_", column.strip().lower()).strip("_") or "attribute"


def _derived_id(row: Mapping[str, Any], columns: tuple[str, ...]) -> dict[str, str]:
    """``{"item_id": "<slug>-<hash>"}`` from ``columns``: readable, and distinct for distinct values
    (the hash covers the exact text, so "CC+ Cream" and "CC Cream" differ). Empty if all are blank."""
    values = [str(row.get(c) or "").strip() for c in columns]
    if not any(values):
        return {}
    slug = re.sub(r"[^0-9a-z]+", "-", "--".join(values).lower()).strip("-")[:200]
    digest = hashlib.blake2b("\x1f".join(values).encode("utf-8"), digest_size=4).hexdigest()
    return {"item_id": f"{slug}-{digest}"}


@dataclass(frozen=True, slots=True)
class AttributeColumn:
    """A file column kept as attribute ``name`` with an optional ``type`` (see ATTRIBUTE_TYPES)."""

    column: str
    name: str
    type: str | None = None


def _to_bool(field_name: str, text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValidationError(field_name, text, "must be true/false (or 1/0, yes/no)")


def _to_int(field_name: str, value: Any) -> int:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError(field_name, value, "is not an integer") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValidationError(field_name, value, "is not an integer")
    return int(number)


def _to_float(field_name: str, text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValidationError(field_name, text, "is not a number") from None


def _to_minor(field_name: str, value: Any, currency: str, price_format: str) -> int:
    if price_format == "minor":
        return _to_int(field_name, value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError(field_name, value, "is not a decimal amount") from None
    if not number.is_finite():
        raise ValidationError(field_name, value, "is not a decimal amount")
    minor = number.scaleb(_EXPONENT.get(currency, 2))
    if minor != minor.to_integral_value():
        raise ValidationError(field_name, value, f"has more decimal places than {currency} allows")
    return int(minor)


def _json_or_split(field_name: str, text: str, sep: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValidationError(field_name, text, f"malformed JSON: {exc.msg}") from None
    return [part.strip() for part in stripped.split(sep) if part.strip()]


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """How one file's columns map onto item fields; see the module docstring for the file format."""

    fields: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    attributes: tuple[AttributeColumn, ...] = ()
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    id_from: tuple[str, ...] = ()
    price_format: str = "minor"
    currency: str = "USD"
    list_separator: str = "|"
    category_separator: str = ">"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ColumnMapping:
        """Validate a mapping given as plain data (a parsed JSON or TOML file)."""
        if not isinstance(raw, Mapping):
            raise ValidationError("mapping", raw, "must be an object")
        for key in raw:
            if key not in _KEYS:
                raise ValidationError(f"mapping.{key}", raw[key], f"unknown mapping key (known: {sorted(_KEYS)})")
        fields: dict[str, str | tuple[str, ...]] = {}
        for name, column in dict(raw.get("fields", {})).items():
            if name not in _MAPPABLE or (name == "attributes" and not isinstance(column, str)):
                raise ValidationError(f"mapping.fields.{name}", column, "is not an item field")
            if isinstance(column, list) and name == "category" and all(isinstance(c, str) for c in column):
                fields[name] = tuple(column)
            elif isinstance(column, str) and column:
                fields[name] = column
            else:
                raise ValidationError(f"mapping.fields.{name}", column, "must be a column name")
        return cls(
            fields=fields,
            attributes=tuple(_attribute_column(i, a) for i, a in enumerate(raw.get("attributes", []))),
            flags=_flags(raw.get("flags", {})),
            id_from=tuple(_str_list("mapping.id_from", raw.get("id_from", []))),
            price_format=_choice("mapping.price_format", raw.get("price_format", "minor"), ("minor", "major")),
            currency=Money(0, str(raw.get("currency", "USD")).upper()).currency,
            list_separator=_sep("mapping.list_separator", raw.get("list_separator", "|")),
            category_separator=_sep("mapping.category_separator", raw.get("category_separator", ">")),
        )

    @classmethod
    def identity(cls, columns: Sequence[str], **options: Any) -> ColumnMapping:
        """The mapping for a file whose columns are our field names; ``attributes.<name>`` columns
        become attributes. Any other column is refused (pass a mapping file instead)."""
        fields: dict[str, str | tuple[str, ...]] = {}
        attrs = []
        for col in columns:
            if col.startswith("attributes."):
                attrs.append(AttributeColumn(col, col[len("attributes."):]))
            elif col in _MAPPABLE:
                fields[col] = col
            else:
                raise ValidationError("columns", col, "unknown column: name it in a mapping (--mapping)")
        return cls(fields=fields, attributes=tuple(attrs), **options)

    def columns(self) -> set[str]:
        """Every file column this mapping reads."""
        cols = {c for v in self.fields.values() for c in ((v,) if isinstance(v, str) else v)}
        cols |= {a.column for a in self.attributes} | set(self.id_from)
        return cols | {c for group in self.flags.values() for c in group}

    def to_raw(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Turn one file row (column -> cell; CSV cells are strings, empty = missing) into wire form."""
        raw: dict[str, Any] = {}
        currency = self._currency(row)
        for name, column in self.fields.items():
            if name == "currency":
                continue
            if isinstance(column, tuple):
                parts = [str(row[c]).strip() for c in column if _present(row.get(c))]
                value: Any = parts or None
            else:
                value = row.get(column)
            if _present(value):
                raw[name] = self._field(name, value, currency)
        if self.id_from and "item_id" not in raw:
            raw.update(_derived_id(row, self.id_from))
        attrs = dict(raw.pop("attributes", {}) or {})
        for attr in self.attributes:
            value = row.get(attr.column)
            if _present(value):
                attrs[attr.name] = self._attribute(attr, value)
        for name, columns in self.flags.items():
            attrs[name] = [attribute_name(c) for c in columns
                           if _present(row.get(c)) and _to_bool(f"attributes.{name}", str(row[c]))]
        if attrs:
            raw["attributes"] = attrs
        return raw

    def _currency(self, row: Mapping[str, Any]) -> str:
        column = self.fields.get("currency")
        value = row.get(column) if isinstance(column, str) else None
        if not _present(value):
            return self.currency
        if not isinstance(value, str):
            raise ValidationError("currency", value, "must be a 3-letter ISO 4217 code")
        return Money(0, value.strip().upper()).currency if len(value.strip()) == 3 else _bad_currency(value)

    def _field(self, name: str, value: Any, currency: str) -> Any:
        if name in _MONEY:
            return self._money(name, value, currency)
        if not isinstance(value, str):
            if name == "rating_count" and isinstance(value, float):
                return _to_int(name, value)
            return value
        if name in ("rating_avg",):
            return _to_float(name, value)
        if name == "rating_count":
            return _to_int(name, value)
        if name == "active":
            return _to_bool(name, value)
        if name == "category" and self.category_separator != ">":
            return [p.strip() for p in value.split(self.category_separator) if p.strip()]
        if name == "regulated_regions":
            return _json_or_split(name, value, self.list_separator)
        if name == "image_vector":
            parts = _json_or_split(name, value, self.list_separator)
            return [_to_float(f"image_vector[{i}]", p) if isinstance(p, str) else p for i, p in enumerate(parts)]
        if name == "inventory" and not value.strip().startswith("{"):
            return _inventory_cells(value, self.list_separator)
        if name in ("inventory", "fulfillment", "attributes"):
            return _json_or_split(name, value, self.list_separator)
        return value

    def _money(self, name: str, value: Any, currency: str) -> Any:
        if isinstance(value, Mapping):
            return value if "currency" in value else {**value, "currency": currency}
        if isinstance(value, bool):
            raise ValidationError(name, value, "must be an amount")
        if isinstance(value, str) and value.strip().startswith("{"):
            return self._money(name, _json_or_split(name, value, self.list_separator), currency)
        if isinstance(value, float) and self.price_format == "minor":
            raise ValidationError(name, value, "must be an integer number of minor units (price_format=minor)")
        amount = _to_minor(name, value, currency, self.price_format)
        if amount < 0:
            raise ValidationError(name, value, "must be >= 0")
        return {"amount": amount, "currency": currency}

    def _attribute(self, attr: AttributeColumn, value: Any) -> Any:
        name = f"attributes.{attr.name}"
        if not isinstance(value, str):
            return value
        if attr.type is None:
            return value == "true" if value in ("true", "false") else value
        if attr.type == "int":
            return _to_int(name, value)
        if attr.type == "float":
            return _to_float(name, value)
        if attr.type == "bool":
            return _to_bool(name, value)
        if attr.type == "list":
            return _json_or_split(name, value, self.list_separator)
        return value


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _bad_currency(value: str) -> str:
    raise ValidationError("currency", value, "must be a 3-letter ISO 4217 code")


def _inventory_cells(text: str, sep: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(sep) if p.strip()):
        location, colon, units = part.rpartition(":")
        if not colon or not location.strip():
            raise ValidationError("inventory", text, "must look like location:units|location:units")
        out[location.strip()] = _to_int(f"inventory.{location.strip()}", units)
    return out


def _str_list(field_name: str, raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ValidationError(field_name, raw, "must be a list of column names")
    return raw


def _choice(field_name: str, raw: Any, options: tuple[str, ...]) -> str:
    if raw not in options:
        raise ValidationError(field_name, raw, f"must be one of {', '.join(options)}")
    return str(raw)


def _sep(field_name: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw or raw.isspace():
        raise ValidationError(field_name, raw, "must be a non-blank separator string")
    return raw


def _attribute_column(i: int, raw: Any) -> AttributeColumn:
    if isinstance(raw, str) and raw:
        return AttributeColumn(raw, attribute_name(raw))
    if not isinstance(raw, Mapping) or not isinstance(raw.get("column"), str) or not raw["column"]:
        raise ValidationError(f"mapping.attributes[{i}]", raw, "must be a column name or {column, name?, type?}")
    extra = set(raw) - {"column", "name", "type"}
    if extra:
        raise ValidationError(f"mapping.attributes[{i}]", raw, f"unknown keys {sorted(extra)}")
    kind = raw.get("type")
    if kind is not None:
        _choice(f"mapping.attributes[{i}].type", kind, ATTRIBUTE_TYPES)
    name = raw.get("name") or attribute_name(raw["column"])
    if not isinstance(name, str):
        raise ValidationError(f"mapping.attributes[{i}].name", name, "must be a string")
    return AttributeColumn(raw["column"], name, kind)


def _flags(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise ValidationError("mapping.flags", raw, "must be a table {attribute: [columns]}")
    return {str(k): tuple(_str_list(f"mapping.flags.{k}", v)) for k, v in raw.items()}


def load_mapping(path: str | Path) -> ColumnMapping:
    """Read a mapping from a ``.json`` or ``.toml`` file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError("mapping", str(p), "file not found") from None
    except UnicodeDecodeError:
        raise ValidationError("mapping", str(p), "is not UTF-8 text") from None
    try:
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError("mapping", str(p), f"is not valid {p.suffix.lstrip('.').upper()}: {exc}") from None
    return ColumnMapping.from_dict(data)
