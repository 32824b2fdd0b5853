"""``emb publish``: a training run becomes a registered, served generation, all or nothing.

The orchestration layer: it is the one place that drives the trainer (export + parity), the registry and the
Triton repository, so none of them imports another (see the layer contract in ``pyproject.toml``).

Steps, in this order (each one leaves a state the next run can finish or undo):

1. checks: the name is new, the parents exist, the eval report (if any) is this run's; leftovers of killed
   publishes are reconciled, and their work folders (``$EMB_HOME/tmp/publish-*`` whose owner lock no live
   process holds) removed;
2. export to ONNX + parity check (a failing check stops here: nothing registered, nothing served);
3. the model version is *staged* in the Triton repository (hidden folder, fully written and fsynced);
4. the generation is registered with the eval metrics (artifacts stored by hash first, then one DB
   transaction): the commit point;
5. the eval report's files are attached (role ``eval-report``, names ``eval/<file>``);
6. the staged version is committed (numbered folder + ``generations.json`` + ``config.pbtxt``);
7. aliases are set.

A kill before 4 leaves at most a hidden staging folder, orphan blobs and a work folder (``reconcile``,
the next publish and ``emb registry fsck --repair`` drop them). A kill after 4 leaves a registered generation
with all its model files, whose Triton version is committed by the next ``emb publish`` or ``emb serve``
(reconcile); a kill between 4 and 5 leaves it without the report's files (its metrics are in): attach them
with ``emb registry attach NAME FILE --role eval-report``. No state has a registered generation without its
model files or a numbered Triton version half written.

Fault injection for tests: crash points ``publish.*``, ``registry.*`` and ``repository.*`` of
:data:`embsdk._faults.POINTS` (``EMBSDK_TEST_CRASH_AT=<name>`` SIGKILLs the process there).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embsdk._faults import POINTS, crash_point
from embsdk._fileio import write_json_atomic
from embsdk.errors import DuplicateGeneration, GenerationNotFound
from publishing.eval_report import EVAL_ROLE, eval_metrics, find_eval_report, report_files
from registry import DatasetRef, Registry
from registry.validation import check_name, dataset_from_path, derive_family, parse_parent_spec
from registry.workdirs import PUBLISH_PREFIX, owned_workdir, scratch_root, sweep_stale_workdirs
from triton_models.repository import ModelRepository
from triton_models.sync import registered_in_registry

__all__ = ["CRASH_POINTS", "PublishResult", "publish"]

CRASH_POINTS = (
    "publish.after_export",
    "publish.after_stage",
    "registry.before_commit",
    "publish.after_register",
    "repository.before_rename",
    "repository.after_rename",
    "repository.after_mapping",
    "publish.before_alias",
)
"""The crash points a publish passes, in order (names of :data:`embsdk._faults.POINTS`)."""
assert set(CRASH_POINTS) <= set(POINTS), set(CRASH_POINTS) - set(POINTS)


@dataclass(frozen=True)
class PublishResult:
    """What ``publish`` did."""

    generation: str
    family: str
    triton_version: int
    parity: dict[str, Any]
    artifacts: dict[str, str]  # name -> sha256 (model files and the eval report's files)
    metrics: dict[str, float] = field(default_factory=dict)
    eval_report: str | None = None
    aliases: tuple[str, ...] = ()
    parents: tuple[tuple[str, str], ...] = ()
    repository: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "family": self.family,
            "triton_version": self.triton_version,
            "parity": self.parity,
            "artifacts": self.artifacts,
            "metrics": self.metrics,
            "eval_report": self.eval_report,
            "aliases": list(self.aliases),
            "parents": [{"name": n, "kind": k} for n, k in self.parents],
            "repository": self.repository,
        }


def publish(
    run_dir: str | Path,
    name: str,
    *,
    parents: Sequence[str] = (),
    aliases: Sequence[str] = (),
    family: str | None = None,
    images: Sequence[str | Path] | None = None,
    eval_report: str | Path | None = None,
    description: str = "",
    registry_url: str | None = None,
    repository: str | Path | None = None,
) -> PublishResult:
    """Export, check, register and serve a run as generation ``name`` (see the module docs for the steps).

    Args:
        run_dir: the ``emb train`` run folder.
        name: the new generation's name (e.g. ``unified-v1``); must not exist.
        parents: ``NAME`` or ``NAME:KIND`` (default kind ``fine-tuned-from``).
        aliases: aliases to point at the new generation once it is served.
        family: Triton model / registry family (default: the name without ``-vN``).
        images: parity images (default: images of the run's manifest).
        eval_report: an ``emb eval`` report folder of this run (default: ``RUN/eval``, else the newest report
            naming this run; see :func:`publishing.eval_report.find_eval_report`).
        description: free text for the registry.
        registry_url: registry URL (default ``EMB_REGISTRY_URL``).
        repository: Triton repository (default ``EMB_TRITON_REPOSITORY``).

    Raises:
        DuplicateGeneration: the name exists. GenerationNotFound: a parent does not exist.
        ParityError: the ONNX model disagrees with PyTorch (the message says by how much).
        RunError, ExportError, ImageDecodeError: bad run, eval report or images.
    """
    from trainer.export import export_run  # torch: only once a publish really runs
    from trainer.run import read_run_info

    check_name(name)
    family = family or derive_family(name)
    edges = [parse_parent_spec(p) for p in parents]
    run = Path(run_dir).expanduser().resolve()
    run_info = read_run_info(run)
    repo = ModelRepository(repository)
    report = find_eval_report(run, eval_report)
    metrics = eval_metrics(report) if report else {}
    report_artifacts = report_files(report) if report else []

    repo.reconcile(registered_in_registry(registry_url))  # finish/undo what a killed publish left behind
    with Registry(registry_url) as reg:
        try:
            reg.get(name)
            raise DuplicateGeneration(name)
        except GenerationNotFound:
            pass
        for parent, _ in edges:
            reg.get(parent)  # GenerationNotFound before any work

    scratch = scratch_root()
    sweep_stale_workdirs(scratch, PUBLISH_PREFIX, remove=True)  # work folders of killed publishes
    with owned_workdir(scratch, f"{PUBLISH_PREFIX}{name}-") as work:  # locked while this process lives
        export = work / "export"
        info = export_run(run, export, images=images)  # ParityError: nothing registered, nothing served
        _annotate(export, name=name, family=family)
        crash_point("publish.after_export")
        staged = repo.stage(export, generation=name, family=family)
        crash_point("publish.after_stage")
        try:
            datasets = _datasets(run_info, report)
            with Registry(registry_url) as reg:
                gen = reg.register(
                    name,
                    family=family,
                    artifacts=[
                        ("model.onnx", export / "model.onnx"),
                        ("export.json", export / "export.json"),
                    ],
                    parents=edges,
                    datasets=datasets,
                    embedding_spec=info["embedding_spec"],
                    input_spec=info["input_spec"],
                    training_config=run_info.config or None,
                    code_version=run_info.code_version,
                    description=description or f"published from {run}",
                    metrics=metrics,
                )
        except BaseException:
            shutil.rmtree(staged.path, ignore_errors=True)  # not registered: drop the staged version
            raise
        crash_point("publish.after_register")
        artifacts = {a.name: a.sha256 for a in gen.artifacts}
        if report_artifacts:
            with Registry(registry_url) as reg:
                for art_name, path in report_artifacts:
                    art = reg.add_artifact(name, path, artifact_name=art_name, role=EVAL_ROLE)
                    artifacts[art.name] = art.sha256
        number = repo.commit(staged)
        crash_point("publish.before_alias")
        if aliases:
            with Registry(registry_url) as reg:
                for alias in aliases:
                    reg.set_alias(alias, name, reason=f"emb publish {name}")
    return PublishResult(
        generation=name,
        family=family,
        triton_version=number,
        parity=info["parity"],
        artifacts=artifacts,
        metrics=metrics,
        eval_report=str(report) if report else None,
        aliases=tuple(aliases),
        parents=tuple(edges),
        repository=str(repo.root),
    )


def _annotate(export: Path, *, name: str, family: str) -> None:
    """Record the generation and family in ``export.json`` (before hashing into the registry)."""
    meta = json.loads((export / "export.json").read_text())
    meta.update(generation=name, family=family)
    write_json_atomic(export / "export.json", meta)


def _datasets(run_info: Any, report: Path | None) -> list[DatasetRef]:
    """The run's training manifest (as hashed at training time), plus the eval manifest when it differs."""
    manifest = Path(run_info.manifest_path)
    refs = []
    try:
        ref = dataset_from_path(manifest, role="train")
        refs.append(
            ref
            if ref.sha256 == run_info.manifest_sha256
            else DatasetRef(manifest.stem, run_info.manifest_sha256, None, "train")
        )
    except OSError:
        refs.append(DatasetRef(manifest.stem, run_info.manifest_sha256, None, "train"))
    if report is not None:
        data = json.loads((report / "metrics.json").read_text())
        sha = data.get("manifest_sha256")
        if sha and sha != run_info.manifest_sha256:
            refs.append(DatasetRef(Path(str(data.get("manifest", "eval"))).stem, sha, None, "eval"))
    return refs
