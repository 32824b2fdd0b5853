"""Read and check a manifest table once, for every reader: ``emb data validate``, ``emb train``, ``emb eval``
(through ``trainer.data.Manifest``) and ``emb backfill`` (through :mod:`embsdk.backfill.source`).

pandas only (imported on first use), no torch. What is checked here is what no reader may accept:

* the file exists, is CSV or Parquet, has a header and at least one row, and has the required columns;
* ``id`` (when present or required): every value an integer in the int64 range (``1.5``, ``2**63``,
  ``abc`` and empty cells are refused, never rounded or wrapped), and no id twice.

Errors are :class:`~embsdk.errors.ManifestError` naming the file and the first offending row (0-based data
rows, as in every manifest message).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from embsdk.errors import ManifestError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["INT64_MAX", "INT64_MIN", "check_ids", "read_table"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_EXACT = 2**53  # larger floats may already have been rounded: an id must be stored as an integer
CSV_SUFFIXES, PARQUET_SUFFIXES = (".csv", ".txt"), (".parquet", ".pq")


def read_table(path: str | Path, *, required: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV (every cell as text, empty = missing) or Parquet manifest and check its shape and ids.

    The ``id`` column, when present, comes back as int64 (see :func:`check_ids`).

    Raises:
        ManifestError: missing or unreadable file, unsupported suffix, no header or rows, a missing
            required column, a bad or duplicate id.
    """
    import pandas as pd

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ManifestError("manifest file not found", path=where)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise ManifestError(f"unsupported manifest format {suffix!r}; use .csv or .parquet", path=where)
    try:
        if suffix in PARQUET_SUFFIXES:
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise ManifestError("the manifest is empty (no header, no rows)", path=where) from None
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for unreadable files
        raise ManifestError(f"cannot read the manifest ({exc})", path=where) from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        hint = " (emb data grocery writes an id column)" if "id" in missing else ""
        names = ", ".join(repr(c) for c in missing)
        raise ManifestError(
            f"missing the {names} column{'s' if len(missing) > 1 else ''}{hint} "
            f"(columns: {list(df.columns)})",
            path=where,
        )
    if len(df) == 0:
        raise ManifestError("the manifest has no rows", path=where)
    df = df.reset_index(drop=True)
    if "id" in df.columns:
        df["id"] = check_ids(df["id"], path=where)
    return df


def check_ids(column: pd.Series, *, path: str | None = None) -> np.ndarray:
    """Item ids → int64, refusing anything that is not exactly an int64, and duplicates.

    Raises:
        ManifestError: naming the first row whose id is empty, not an integer, outside int64, or repeated.
    """
    ids = _as_int64(column, path)
    _check_unique(ids, path)
    return ids


def _as_int64(column: pd.Series, path: str | None) -> np.ndarray:
    values = column.to_numpy()
    kind = values.dtype.kind
    if kind == "i":
        return values.astype(np.int64)
    if kind == "u":
        over = np.flatnonzero(values > INT64_MAX)
        if over.size:
            _refuse(int(over[0]), values[over[0]], path)
        return values.astype(np.int64)
    if _all_text(column):
        try:
            return values.astype(np.int64)  # int() of each string, in C: exact, or raises
        except (ValueError, OverflowError):
            pass  # find and name the first bad row below
    out = np.empty(len(values), np.int64)
    for row, value in enumerate(values):  # text (CSV), floats, objects: one value at a time, exactly
        parsed = _parse_id(value)
        if parsed is None:
            _refuse(row, value, path)
        out[row] = parsed
    return out


def _all_text(column: pd.Series) -> bool:
    import pandas as pd

    return column.dtype == object and pd.api.types.infer_dtype(column, skipna=False) == "string"


def _parse_id(value: Any) -> int | None:
    """The exact int64 an id cell holds, or None when it holds anything else."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating)):
        as_float = float(value)
        if not np.isfinite(as_float) or not as_float.is_integer() or abs(as_float) > _FLOAT_EXACT:
            return None
        number = int(as_float)
    else:
        parsed = _parse_text(str(value).strip())
        if parsed is None:
            return None
        number = parsed
    return number if INT64_MIN <= number <= INT64_MAX else None


def _parse_text(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        exact = Decimal(text)  # "12.0" or "1e3" are integers; "1.5", "nan", "inf" are not
    except InvalidOperation:
        return None
    return int(exact) if exact.is_finite() and exact == exact.to_integral_value() else None


def _refuse(row: int, value: Any, path: str | None) -> NoReturn:
    import pandas as pd

    missing = (
        value is None or (not isinstance(value, str) and bool(pd.isna(value))) or str(value).strip() == ""
    )
    if missing:
        raise ManifestError("empty id (every row needs one)", row=row, path=path)
    raise ManifestError(
        f"'id' is not an integer in the int64 range ({value!r}; ids are whole numbers "
        "in [-2**63, 2**63 - 1])",
        row=row,
        path=path,
    )


def _check_unique(ids: np.ndarray, path: str | None) -> None:
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    repeats = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1]) + 1
    if not repeats.size:
        return
    row = int(order[repeats].min())  # the first row (in file order) that repeats an earlier id
    first = int(np.flatnonzero(ids == ids[row])[0])
    raise ManifestError(
        f"duplicate id {int(ids[row])} (first in row {first}; ids must be unique)", row=row, path=path
    )
