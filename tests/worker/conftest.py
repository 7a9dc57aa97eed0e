"""Fixtures of the worker pipeline tests: real DCMTK storescp, real redis, real Celery worker.

(The results builders' fixtures live in ``outputs_fixtures.py``.)
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from pydicom.dataset import Dataset
from pydicom.uid import GrayscaleSoftcopyPresentationStateStorage, SecondaryCaptureImageStorage

from mammocad.config import Destination, Settings, load_settings
from mammocad.spool.studies import StudyFiles
from mammocad.spool.tasks import TASK_ANALYZE_IMAGE
from tests import processes
from tests.factories import make_four_view_study, write
from tests.services import (
    free_port,
    wait_for_port,
    wait_until,  # also re-exported for the worker tests
)


def make_settings(spool: Path, destinations: list[Destination] | None = None, **sections: Any) -> Settings:
    """Settings for a test: its own spool, fast delivery retries, the given destinations."""
    delivery = {"retry_initial_s": 0.2, "retry_max_s": 1.0, "deadline_s": 30.0, "network_timeout_s": 3.0}
    delivery.update(sections.pop("delivery", {}))
    worker = {"soft_time_limit_s": 60, "time_limit_s": 90, "device": "cpu"}
    worker.update(sections.pop("worker", {}))
    return Settings(node={"spool_dir": spool, "ae_title": "MAMMOCAD"}, destinations=destinations or [],
                    delivery=delivery, worker=worker, **sections)


def spool_study(spool: Path) -> tuple[str, list[str]]:
    """Put a four-view study where the node would (spool/studies/<S>/images/<sop>.dcm);
    (Study Instance UID, SOP Instance UIDs in the factory's order: R CC, L CC, R MLO, L MLO)."""
    study = make_four_view_study(rows=256, columns=200)
    uid = str(study[0].StudyInstanceUID)
    files = StudyFiles(spool, uid)
    for ds in study:
        write(ds, files.image(str(ds.SOPInstanceUID)))
    return uid, [str(ds.SOPInstanceUID) for ds in study]


def write_config(tmp_path: Path, spool: Path, weights: Path | None = None, *, broker_url: str = "",
                 destinations: Iterable[Destination] = (), audit: bool = False,
                 worker: Mapping[str, Any] | None = None, **delivery: float) -> Path:
    """``tmp_path/mammocad.toml`` for a test whose worker or admin command reads a configuration
    file (an admin may edit it, ``add_destination``, while a worker follows it): its own spool,
    ``weights`` on the CPU (None: no ``weights`` key, for an admin command that loads no model),
    fast delivery retries (``delivery`` overrides or adds to them, e.g. ``deadline_s=2.0``),
    ``worker`` overrides or adds worker settings (``{"lease_s": 5}``), ``destinations`` as
    configured (``storescp.destination(outputs=[...])``), and with ``audit`` the audit trail in
    ``tmp_path/audit.log``."""
    config = tmp_path / "mammocad.toml"
    broker = {"broker": {"url": broker_url}} if broker_url else {}
    trail = {"audit": {"file": str(tmp_path / "audit.log")}} if audit else {}
    model = {"weights": str(weights)} if weights is not None else {}
    peers = [d.model_dump(mode="json", exclude_defaults=True) for d in destinations]
    config.write_text(tomlkit.dumps({
        "node": {"spool_dir": str(spool)}, **broker,
        "worker": {**model, "device": "cpu", "soft_time_limit_s": 60, "time_limit_s": 90, **(worker or {})},
        "delivery": {"retry_initial_s": 0.2, "retry_max_s": 1.0, "network_timeout_s": 3.0, **delivery},
        **trail, **({"destinations": peers} if peers else {})}))
    return config


def analyse_new_study(celery_worker: Callable[..., Any], config: Path) -> tuple[Any, StudyFiles, list[str]]:
    """Start a worker on the configuration file ``config`` (it follows later edits of it), spool
    a four-view study in its spool and queue each image's analysis.

    The study is not declared complete: the test finalises it for the images it chooses.
    Returns the worker's Celery app, the study's files and its SOP Instance UIDs (in
    :func:`spool_study`'s order).
    """
    settings = load_settings(config)
    app = celery_worker(settings, config)
    spool = settings.node.spool_dir
    study_uid, sops = spool_study(spool)
    for sop in sops:
        app.send_task(TASK_ANALYZE_IMAGE, args=[str(spool), study_uid, sop])
    return app, StudyFiles(spool, study_uid), sops


#: The objects a report makes per image: what a late report must not send again.
SC_CLASS, GSPS_CLASS = str(SecondaryCaptureImageStorage), str(GrayscaleSoftcopyPresentationStateStorage)


def shown_images(ds: Dataset) -> set[str]:
    """The images an SC (Source Image Sequence) or GSPS (Referenced Series) stands for."""
    if "SourceImageSequence" in ds:
        return {str(ref.ReferencedSOPInstanceUID) for ref in ds.SourceImageSequence}
    return {str(img.ReferencedSOPInstanceUID) for se in ds.ReferencedSeriesSequence
            for img in se.ReferencedImageSequence}


def per_image(datasets: Iterable[Dataset]) -> dict[str, list[str]]:
    """Per image, the sorted SOP classes of the SC and GSPS objects that show it, one entry per
    copy: ``{sop: [GSPS, SC]}`` for an image sent each once, longer lists for copies sent again."""
    out: dict[str, list[str]] = {}
    for ds in datasets:
        if str(ds.SOPClassUID) in (SC_CLASS, GSPS_CLASS):
            for sop in shown_images(ds):
                out.setdefault(sop, []).append(str(ds.SOPClassUID))
    return {sop: sorted(classes) for sop, classes in out.items()}


def once_each(sops: Iterable[str]) -> dict[str, list[str]]:
    """What :func:`per_image` gives when every image of ``sops`` got its SC and GSPS exactly once."""
    return {sop: sorted((GSPS_CLASS, SC_CLASS)) for sop in sops}


DONE_SUFFIX = ".received"


class StoreSCP:
    """A DCMTK storescp writing what it receives into ``folder``."""

    def __init__(self, folder: Path, port: int | None = None, ae_title: str = "PACS",
                 accept_compressed: bool = True, args: tuple[str, ...] = ()) -> None:
        self.folder, self.port, self.ae_title = folder, port or free_port(), ae_title
        #: False: DCMTK's default, uncompressed transfer syntaxes only (an old PACS).
        self.accept_compressed = accept_compressed
        #: More storescp options, e.g. ``("-xf", CONFIG, PROFILE)``: the SOP classes it accepts
        #: (with accept_compressed False: storescp refuses ``-xf`` with ``+xa``).
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> StoreSCP:
        exe = shutil.which("storescp")
        if exe is None:
            raise RuntimeError("DCMTK storescp is not installed: run `make test`, which installs dcmtk")
        self.folder.mkdir(parents=True, exist_ok=True)
        syntaxes = ["+xa"] if self.accept_compressed else []
        # storescp writes each file in place while it arrives; the command it runs on
        # reception (after the file is complete) leaves a marker, so received() never lists
        # a file still being written.
        self.proc = processes.spawn([exe, "-aet", self.ae_title, *syntaxes, *self.args, "-od", str(self.folder),
                                     "-xcr", f"touch #p/#f{DONE_SUFFIX}", str(self.port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc)

    def __enter__(self) -> StoreSCP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self, timeout: float = 30.0) -> list[Path]:
        """The objects received so far, each complete.

        storescp writes a file before it answers the C-STORE, but runs its on-reception
        command (the marker) only after answering, in a child it does not wait for. So right
        after a store returns its file may exist without its marker: listing only marked files
        then misses it (the JPEG delivery case read its objects that way and found one short).
        Here every file present is waited for until its marker exists, then all are returned.
        """
        def pending() -> list[Path]:
            return [p for p in self.folder.iterdir() if p.is_file() and p.suffix != DONE_SUFFIX
                    and not p.with_name(p.name + DONE_SUFFIX).exists()]

        wait_until(lambda: not pending(), timeout, f"storescp to finish the files in {self.folder}")
        return sorted(p for p in self.folder.iterdir()
                      if p.is_file() and p.suffix != DONE_SUFFIX and p.with_name(p.name + DONE_SUFFIX).exists())

    def destination(self, name: str = "pacs", **kw: Any) -> Destination:
        return Destination(name=name, ae_title=self.ae_title, host="127.0.0.1", port=self.port, **kw)


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreSCP]:
    scp = StoreSCP(tmp_path / "received").start()
    yield scp
    scp.stop()




def _tiny_checkpoint(path: Path, name: str, *, finds_nothing: bool = False) -> Path:
    import torch

    from mammocad.model.checkpoint import save_checkpoint
    from mammocad.model.detector import DetectorSpec, build_detector
    from mammocad.model.standardise import PreprocessSpec

    torch.manual_seed(0)
    spec = DetectorSpec(backbone="resnet18", tile_size=128, tile_overlap=16, detections_per_img=20,
                        rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=50,
                        inference_tile_size=0)  # 0: infer on the training tile (random weights find boxes there)
    model = build_detector(spec)
    if finds_nothing:  # the box classifier calls every proposal background (class 0)
        with torch.no_grad():
            model.roi_heads.box_predictor.cls_score.bias[0] = 50.0
    return save_checkpoint(path, model, spec, PreprocessSpec(working_spacing_mm=0.2),
                           {"model_name": name, "version": "0.0.0-random", "synthetic": True})


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised checkpoint (the demo weights may not exist yet)."""
    return _tiny_checkpoint(tmp_path_factory.mktemp("weights") / "random.pt", "mammocad-test-random")


@pytest.fixture(scope="session")
def no_findings_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny detector, except that it finds nothing: every study is normal (negative)."""
    return _tiny_checkpoint(tmp_path_factory.mktemp("weights") / "negative.pt", "mammocad-test-negative",
                            finds_nothing=True)


@pytest.fixture
def celery_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[[Settings], Any]]:
    """Start a real Celery worker (threads, in this process) on both queues for given settings."""
    from celery.contrib.testing.worker import start_worker

    from mammocad.spool.broker import make_celery
    from mammocad.worker.tasks import register_tasks

    stack: list[Any] = []

    def start(settings: Settings, config_path: Path | None = None) -> Any:
        app = make_celery(settings, broker_url=redis_url)
        register_tasks(app, settings, config_path)
        ctx = start_worker(app, pool="threads", concurrency=3, perform_ping_check=False, loglevel="WARNING",
                           queues=[settings.worker.analysis_queue, settings.worker.results_queue])
        ctx.__enter__()
        stack.append(ctx)
        return app

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)
