"""`config check` warns about two destinations on one host and port with different AE titles:
a PACS that accepts any called AE title (Orthanc by default) stores every result twice."""

from __future__ import annotations

from mammocad.config import Destination, OutputKind
from mammocad.config.advice import duplicate_peers
from tests.config.conftest import Runner


def _dest(name: str, ae: str, host: str = "127.0.0.1", port: int = 4242, **kw: object) -> Destination:
    return Destination(name=name, ae_title=ae, host=host, port=port, **kw)  # type: ignore[arg-type]


def test_same_host_and_port_with_another_ae_title_is_warned() -> None:
    [line] = duplicate_peers([_dest("pacs", "PACS"), _dest("orthanc", "ORTHANC", host="localhost")])
    assert line.startswith("destinations pacs and orthanc send to one host and port with different AE titles "
                           "(PACS@127.0.0.1:4242, ORTHANC@localhost:4242)")
    assert "Orthanc" in line and "every result" in line and "`mammocad dest remove pacs`" in line


def test_only_results_both_receive_are_counted() -> None:
    sr = _dest("sr", "PACS", outputs=[OutputKind.MAMMO_CAD_SR])
    images = _dest("images", "VIEWER", outputs=[OutputKind.SECONDARY_CAPTURE, OutputKind.GSPS])
    assert duplicate_peers([sr, images]) == []
    both = _dest("both", "OTHER", outputs=[OutputKind.MAMMO_CAD_SR, OutputKind.GSPS])
    [line] = duplicate_peers([sr, both])
    assert "the mammo-cad-sr results are stored twice" in line


def test_another_port_or_host_is_not_warned() -> None:
    assert duplicate_peers([_dest("a", "PACS"), _dest("b", "ORTHANC", port=4243)]) == []
    assert duplicate_peers([_dest("a", "PACS"), _dest("b", "ORTHANC", host="192.0.2.1")]) == []


def test_readme_orthanc_walkthrough_kept_template_destination_is_warned(mammocad: Runner) -> None:
    out = mammocad("dest", "add", "orthanc", "--ae", "ORTHANC", "--host", "127.0.0.1", "--port", "4242")
    assert out.returncode == 0, out.stderr
    check = mammocad("config", "check")
    assert check.returncode == 0, check.stderr
    assert "warning: destinations pacs and orthanc send to one host and port" in check.stdout
    assert mammocad("dest", "remove", "pacs").returncode == 0
    assert "send to one host and port" not in mammocad("config", "check").stdout
