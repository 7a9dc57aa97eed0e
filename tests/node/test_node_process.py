"""`mammocad node` as a real process: full disk answered with 0xA700, clean stop, CLI errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mammocad.node.serve import CHILD_STOP_S
from mammocad.spool.outbox import Outbox
from tests import factories, processes
from tests.node.conftest import AE, config_text, queued_tasks, run_dcmtk
from tests.services import free_port, wait_for_port, wait_until

# The node process may write files of at most this size: bigger writes fail with EFBIG,
# which the node must treat like a full disk (root ignores read-only folders, and
# mounting a tiny tmpfs needs privileges the CI may not have).
_FSIZE_LIMIT = 40_000
_LIMITED_NODE = (
    "import resource, signal, sys;"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
    f"resource.setrlimit(resource.RLIMIT_FSIZE, ({_FSIZE_LIMIT}, {_FSIZE_LIMIT}));"
    "from mammocad.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_full_disk_answers_out_of_resources(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    cfg = tmp_path / "mammocad.toml"
    cfg.write_text(config_text(spool, port, redis_url))
    proc = processes.spawn([sys.executable, "-c", _LIMITED_NODE, "--config", str(cfg), "node"],
                           name="mammocad node", stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, timeout=30)
        big = factories.make_mammogram()                       # ~100 kB: over the limit
        small = factories.make_mammogram(rows=64, columns=64)  # ~9 kB: fits
        files = [factories.write(ds, tmp_path / f"{i}.dcm") for i, ds in enumerate((big, small))]
        result = run_dcmtk(["storescu", "-d", "-nh", "-aet", "STORESCU", "-aec", AE, "127.0.0.1", str(port),
                            *map(str, files)])
        assert "0xa700: Refused: Out of resources" in result.stderr, result.stderr
        assert "ErrorComment" in result.stderr and "0x0000: Success" in result.stderr, result.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=30)
    assert proc.returncode == 0, log
    assert not list((spool / "studies").glob(f"*/images/{big.SOPInstanceUID}.dcm"))
    assert list((spool / "tmp").iterdir()) == []  # the failed write left nothing behind
    assert (spool / "studies" / small.StudyInstanceUID / "images" / f"{small.SOPInstanceUID}.dcm").exists()
    assert [args[2] for _, args in queued_tasks(redis_url, "gpu")] == [small.SOPInstanceUID]
    assert "event=store_failed" in log and "status=0xA700" in log
    assert str(big.PatientName) not in log and str(big.PatientID) not in log  # no patient data in the logs


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                    reason="root ignores folder permissions; setpriv drops that privilege")
def test_unreadable_config_folder_keeps_the_callers_check(tmp_path: Path, redis_url: str) -> None:
    """The config folder stops being readable while the node runs (an admin tightens
    /etc/mammocad): the reload fails, and every caller is still checked against the callers
    it had. The PermissionError used to escape the A-ASSOCIATE handler, and pynetdicom then
    accepted the association, unknown caller included."""
    port = free_port()
    folder = tmp_path / "etc"
    folder.mkdir()
    cfg = folder / "mammocad.toml"
    cfg.write_text(config_text(tmp_path / "spool", port, redis_url))
    node = [sys.executable, "-m", "mammocad", "--config", str(cfg), "node"]
    if os.geteuid() == 0:  # the node as root without the capabilities that bypass permissions
        node = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", *node]
    proc = processes.spawn(node, name="mammocad node", stderr=subprocess.PIPE, text=True)

    def echo(aet: str) -> int:
        return run_dcmtk(["echoscu", "-aet", aet, "-aec", AE, "127.0.0.1", str(port)]).returncode

    try:
        wait_for_port(port, timeout=30)
        assert echo("STRANGER") != 0
        folder.chmod(0)
        try:
            assert echo("STRANGER") != 0, "an unknown caller was accepted"
            assert echo("STRANGER") != 0
            assert echo("ECHOSCU") == 0  # the callers it had still apply
        finally:
            folder.chmod(0o755)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=30)
    assert "calling_ae=STRANGER" in log and "event=association_accepted calling_ae=STRANGER" not in log, log
    assert "event=config_invalid" in log and "Permission denied" in log, log


def test_node_without_broker_url_explains(tmp_path: Path) -> None:
    cfg = tmp_path / "mammocad.toml"
    cfg.write_text(config_text(tmp_path / "spool", free_port(), ""))
    result = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(cfg), "node"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "broker.url is empty" in result.stderr and "mammocad serve" in result.stderr


@pytest.mark.parametrize("command", ["node", "serve"])
@pytest.mark.parametrize(("option", "value", "problem"), [
    ("--port", "99999", "port must be 1-65535"),
    ("--ae-title", "A\\B", "AE title must not contain a backslash"),
    ("--ae-title", "SEVENTEEN_CHARS_X", "AE title must be 1-16 characters"),
])
def test_bad_option_is_one_line_naming_it(tmp_path: Path, command: str, option: str, value: str,
                                          problem: str) -> None:
    """A bad --port or --ae-title used to print pydantic's multi-line report (model name,
    input_type, an errors.pydantic.dev link) that named neither the option nor the fix."""
    cfg = tmp_path / "mammocad.toml"
    cfg.write_text(config_text(tmp_path / "spool", free_port(), "redis://127.0.0.1:1/0"))
    result = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(cfg), command, option, value],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"mammocad: error: invalid {option} "), line
    assert problem in line and f"leave {option} out" in line, line
    assert "pydantic" not in line and "NodeSettings" not in line, line
    assert not (tmp_path / "spool").exists()  # refused before anything started


def test_bad_option_beside_a_bad_file_names_both(tmp_path: Path) -> None:
    """The file's own error is still reported as the file's; the option's line says where its value came from."""
    cfg = tmp_path / "mammocad.toml"
    cfg.write_text(config_text(tmp_path / "spool", 0, "redis://127.0.0.1:1/0"))
    result = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(cfg), "node", "--ae-title", "A\\B"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"invalid configuration in {cfg}:" in result.stderr
    assert "node.port: " in result.stderr and "node.ae_title: " in result.stderr
    assert "[from option --ae-title]" in result.stderr and "[from option --port]" not in result.stderr


def test_serve_runs_broker_and_node_and_reports_worker(tmp_path: Path) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    cfg = tmp_path / "mammocad.toml"
    cfg.write_text(config_text(spool, port, ""))
    proc = processes.spawn([sys.executable, "-m", "mammocad", "--config", str(cfg), "serve"],
                           name="mammocad serve", stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, timeout=30)
        echo = run_dcmtk(["echoscu", "-aet", "ECHOSCU", "-aec", AE, "127.0.0.1", str(port)])
        worker_alive = proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=2 * CHILD_STOP_S + 60)  # serve's own bound, as below
    assert "event=broker_started" in log and (spool / "redis").is_dir(), log
    if worker_alive and "event=worker_exited" not in log:
        assert echo.returncode == 0, echo.stderr
        assert proc.returncode == 0, log            # SIGTERM: clean stop
        assert "child=redis-server" in log and "child=worker" in log
    else:  # the worker command failed: serve must say so and stop everything
        assert proc.returncode == 1 and "event=worker_exited" in log, log
    assert "event=node_stopped" in log


def test_serve_options_reach_the_worker(tmp_path: Path) -> None:
    """`serve --ae-title X --port P`: the node answers on P as X, and the worker it starts
    sends results with X as calling AE title. The worker used to read node.ae_title from
    the file, so a PACS that admits only X refused the results (or filed them under the
    wrong sender). A dead letter requeued with `mammocad outbox retry` makes the worker
    deliver without running the model; storescp records the calling AE title it saw."""
    file_port, port, pacs_port = free_port(), free_port(), free_port()
    spool = tmp_path / "spool"
    calls = tmp_path / "calling_ae.txt"
    cfg = tmp_path / "mammocad.toml"
    cfg.write_text(config_text(spool, file_port, "").replace(f'ae_title = "{AE}"', 'ae_title = "FROMFILE"', 1)
                   + f'[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "127.0.0.1"\nport = {pacs_port}\n')
    (tmp_path / "pacs").mkdir()
    # storescp puts #a (the calling AE title) in double quotes, which the shell removes
    pacs = processes.spawn(["storescp", "-aet", "PACS", "-od", str(tmp_path / "pacs"),
                            "-xcr", f"echo #a >> {calls}", str(pacs_port)],
                           name="storescp", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outbox = Outbox(spool)
    result = factories.make_mammogram(rows=64, columns=64)
    item = outbox.put("pacs", "item1", [result])
    assert item is not None
    outbox.dead_letter(item)
    proc = processes.spawn([sys.executable, "-m", "mammocad", "--config", str(cfg), "serve",
                            "--ae-title", "SERVEAE", "--port", str(port)],
                           name="mammocad serve", stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, timeout=30)
        echo = run_dcmtk(["echoscu", "-aet", "ECHOSCU", "-aec", "SERVEAE", "127.0.0.1", str(port)])
        assert echo.returncode == 0, echo.stderr
        retry = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(cfg), "outbox", "retry", "--all"],
                               capture_output=True, text=True, timeout=60)
        assert retry.returncode == 0, retry.stderr
        wait_until(lambda: calls.exists() and calls.read_text().strip(), 120, "the delivery to storescp")
        delivered = proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        # serve may take CHILD_STOP_S for the worker and again for redis, after the node's stop:
        # 60 s once failed a loaded CI run whose worker took the whole 30 s (and was killed).
        _, log = proc.communicate(timeout=2 * CHILD_STOP_S + 60)
        processes.stop(pacs)
    assert delivered, log
    assert calls.read_text().split() == ["SERVEAE"], log
