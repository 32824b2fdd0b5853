"""The training manifest: one table (CSV or Parquet) listing images, their per-task labels, domain and split.

Columns:
    image        path relative to the manifest file, or absolute
    id           optional int64 item id (stable across manifests of the same data)
    task.<name>  class label (string) for task ``<name>``; empty / NaN = no label for that task
    domain       optional, e.g. ``catalog`` or ``photo``
    split        optional, ``train`` / ``val`` / ``test``

Example:
    >>> m = Manifest.load("grocery.csv")
    >>> m.tasks, len(m.classes("fine"))
    (['catalog', 'coarse', 'fine'], 81)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsdk._fileio import sha256_file
from embsdk.errors import ImageDecodeError, ManifestError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SPLITS", "TASK_PREFIX", "BadRow", "Manifest", "ValidationReport", "validate"]

TASK_PREFIX = "task."
SPLITS = ("train", "val", "test")


def _clean_label(value: Any) -> str | None:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


@dataclass
class Manifest:
    """A loaded manifest. ``rows`` keeps the file's order; row numbers in messages are 0-based data rows."""

    path: Path
    rows: pd.DataFrame
    sha256: str

    @classmethod
    def load(cls, path: str | Path, *, strict: bool = False) -> Manifest:
        """Read a manifest file and check its columns (not its images: see :func:`validate`).

        Args:
            path: a ``.csv`` or ``.parquet`` file.
            strict: accepted for symmetry with :func:`validate`; a bad ``id`` or ``split`` always raises here.

        Raises:
            ManifestError: the file is missing, unreadable, empty, lacks ``image`` / ``task.*`` columns,
                has an ``id`` that is not an int64 or is repeated (:func:`embsdk.manifest.read_table`),
                or an unknown ``split``.
        """
        import pandas as pd

        from embsdk.manifest import read_table

        path = Path(path).expanduser().resolve()
        df = read_table(path, required=("image",))  # the one table check: format, rows, ids (int64, unique)
        if not [c for c in df.columns if str(c).startswith(TASK_PREFIX)]:
            raise ManifestError("no 'task.<name>' label column", path=str(path))
        for col in df.columns:
            if str(col).startswith(TASK_PREFIX):
                df[col] = pd.Series([_clean_label(v) for v in df[col].tolist()], dtype=object, index=df.index)
        if "split" in df.columns:
            df["split"] = df["split"].fillna("").astype(str)
            bad_split = ~df["split"].isin(SPLITS + ("",))
            if bad_split.any():
                bad = int(bad_split.to_numpy().nonzero()[0][0])
                raise ManifestError(
                    f"unknown split {df['split'].iloc[bad]!r} (use {', '.join(SPLITS)})",
                    row=bad,
                    path=str(path),
                )
        return cls(path=path, rows=df, sha256=sha256_file(path))

    @property
    def tasks(self) -> list[str]:
        """Task names (``task.<name>`` columns without the prefix), sorted."""
        return sorted(str(c)[len(TASK_PREFIX) :] for c in self.rows.columns if str(c).startswith(TASK_PREFIX))

    def labels(self, task: str) -> pd.Series:
        """The label column of *task* (None where unlabeled)."""
        self._check_task(task)
        return self.rows[TASK_PREFIX + task]

    def classes(self, task: str) -> list[str]:
        """Sorted label vocabulary of *task*, taken from the train split (all rows if there is no split column)."""
        col = self.labels(task)
        if "split" in self.rows.columns and (self.rows["split"] == "train").any():
            col = col[self.rows["split"] == "train"]
        return sorted({v for v in col if v is not None})

    def image_path(self, i: int) -> Path:
        """Absolute path of row *i*'s image."""
        p = Path(str(self.rows["image"].iloc[i]))
        return p if p.is_absolute() else (self.path.parent / p)

    def indices(self, split: str | None = None) -> list[int]:
        """Row numbers of *split* (all rows when None)."""
        if split is None or "split" not in self.rows.columns:
            return list(range(len(self.rows)))
        return [int(i) for i in (self.rows["split"] == split).to_numpy().nonzero()[0]]

    def subset(self, split: str | None = None) -> Manifest:
        """A manifest holding only the rows of *split* (same path and hash: a view of this file)."""
        rows = self.rows.iloc[self.indices(split)].reset_index(drop=True)
        return Manifest(path=self.path, rows=rows, sha256=self.sha256)

    def ids(self) -> list[int]:
        """Item ids (the ``id`` column, or the row number when absent)."""
        if "id" in self.rows.columns:
            return [int(v) for v in self.rows["id"]]
        return list(range(len(self.rows)))

    def _check_task(self, task: str) -> None:
        if TASK_PREFIX + task not in self.rows.columns:
            raise ManifestError(
                f"no task {task!r} in the manifest (tasks: {', '.join(self.tasks)})", path=str(self.path)
            )

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class BadRow:
    """One rejected row and why."""

    row: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass
class ValidationReport:
    """Result of :func:`validate`: rows that passed, and rows skipped with their reason."""

    total: int
    good: list[int] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad

    def summary(self) -> str:
        if not self.bad:
            return f"manifest OK: {self.total} rows"
        kinds: dict[str, int] = {}
        for b in self.bad:
            kinds[b.reason.split(":")[0]] = kinds.get(b.reason.split(":")[0], 0) + 1
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return f"skipped {len(self.bad)} of {self.total} rows ({detail}); first: {self.bad[0]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "good": len(self.good),
            "skipped": len(self.bad),
            "bad": [str(b) for b in self.bad[:100]],
        }


def _check_image(path: Path) -> str | None:
    """Decode *path* as a default-size model would (the one decoder: bounded, too-large images refused)."""
    from embsdk.preprocess import TOO_LARGE, InputSpec, decode_side, open_image

    if not path.is_file():
        return f"missing image: {path}"
    try:
        open_image(path, min_side=decode_side(InputSpec()))
    except ImageDecodeError as exc:
        kind = "too large image" if exc.reason.startswith(TOO_LARGE) else "corrupt image"
        return f"{kind}: {path} ({exc.reason})"
    return None


def validate(
    manifest: Manifest,
    *,
    strict: bool = False,
    check_images: bool = True,
    tasks: list[str] | None = None,
    rows: list[int] | None = None,
) -> ValidationReport:
    """Check every row before training: image readable, labels known, at least one label.

    A label is *unknown* when it is not in the train split's vocabulary of its task (it could never be
    learned nor scored). ``strict`` raises at the first bad row; otherwise bad rows are skipped and counted.

    Args:
        manifest: the loaded manifest.
        strict: raise :class:`ManifestError` on the first bad row.
        check_images: open and fully decode every image (slow on large sets, but catches truncation).
        tasks: tasks to check labels for (default: all).
        rows: row numbers to check (default: all).

    Raises:
        ManifestError: strict and a bad row, or the manifest (or the selected rows) is empty.
    """
    tasks = tasks or manifest.tasks
    rows = list(range(len(manifest))) if rows is None else rows
    if not rows:
        raise ManifestError("no rows to use (empty manifest or split)", path=str(manifest.path))
    vocab = {t: set(manifest.classes(t)) for t in tasks}
    report = ValidationReport(total=len(rows))
    columns = {t: manifest.labels(t).tolist() for t in tasks}
    for i in rows:
        reason = None
        labels = {t: columns[t][i] for t in tasks}
        for t, lab in labels.items():
            if lab is not None and lab not in vocab[t]:
                reason = f"unknown label: {lab!r} for task {t!r} (not in its train split)"
                break
        if reason is None and all(v is None for v in labels.values()):
            reason = f"no label: the row has no label for any of the tasks {tasks}"
        if reason is None and check_images:
            reason = _check_image(manifest.image_path(i))
        if reason is None:
            report.good.append(i)
            continue
        if strict:
            raise ManifestError(reason, row=i, path=str(manifest.path))
        report.bad.append(BadRow(i, reason))
    if not report.good:
        raise ManifestError(f"no usable rows: {report.summary()}", path=str(manifest.path))
    return report
