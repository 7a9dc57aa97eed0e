"""Who may connect: called/calling AE titles, caller hosts, and live edits of the callers list."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pynetdicom import AE

from mammocad.config import load_settings
from mammocad.dicom.sop_classes import VERIFICATION
from mammocad.node.associations import CallerPolicy
from tests.node.conftest import AE as NODE_AE
from tests.node.conftest import NodeEnv, config_text

CALLING_REASON = "Calling AE Title Not Recognized"
CALLED_REASON = "Called AE Title Not Recognized"


def _rejected(result_stderr: str, reason: str) -> bool:
    return "Rejected Permanent" in result_stderr and "Service User" in result_stderr and reason in result_stderr


def test_wrong_called_ae_rejected(start_node: Callable[..., NodeEnv]) -> None:
    env = start_node()
    result = env.echoscu(aec="NOTMAMMO")
    assert result.returncode != 0
    assert _rejected(result.stderr, CALLED_REASON), result.stderr


def test_unknown_calling_ae_rejected(start_node: Callable[..., NodeEnv]) -> None:
    env = start_node()
    result = env.echoscu(aet="STRANGER")
    assert result.returncode != 0
    assert _rejected(result.stderr, CALLING_REASON), result.stderr


def test_unknown_callers_allowed_when_not_required(start_node: Callable[..., NodeEnv]) -> None:
    env = start_node(extra_node="require_known_callers = false\n")
    assert env.echoscu(aet="STRANGER").returncode == 0


def test_known_caller_from_wrong_host_rejected(start_node: Callable[..., NodeEnv]) -> None:
    callers = '[[callers]]\nae_title = "PACS"\nhost = "127.0.0.1"\n\n[[callers]]\nae_title = "FAR"\nhost = "10.9.9.9"\n'
    env = start_node(callers=callers)
    assert env.echoscu(aet="PACS").returncode == 0
    result = env.echoscu(aet="FAR")  # echoscu connects from 127.0.0.1, not 10.9.9.9
    assert _rejected(result.stderr, CALLING_REASON), result.stderr
    # The same AE title from another loopback address (pynetdicom can bind the source address).
    scu = AE(ae_title="PACS")
    scu.add_requested_context(VERIFICATION)
    assoc = scu.associate("127.0.0.1", env.port, ae_title=NODE_AE, bind_address=("127.0.0.2", 0))
    assert assoc.is_rejected
    rejection = assoc.acceptor.primitive
    assert rejection is not None, "a rejected association keeps the A-ASSOCIATE-RJ"
    assert rejection.diagnostic == 0x03  # calling AE title not recognised


def test_callers_hot_reloaded(start_node: Callable[..., NodeEnv], caplog: pytest.LogCaptureFixture) -> None:
    env = start_node()
    assert _rejected(env.echoscu(aet="NEWPACS").stderr, CALLING_REASON)
    text = env.config.read_text()
    env.config.write_text(text + '\n[[callers]]\nae_title = "NEWPACS"\n')
    result = env.echoscu(aet="NEWPACS")
    assert result.returncode == 0, result.stderr
    # An invalid edit keeps the previous callers (and is logged).
    time.sleep(0.01)
    env.config.write_text(text + '\n[[callers]]\nae_title = "THIS AE TITLE IS FAR TOO LONG"\n')
    with caplog.at_level(logging.INFO, logger="mammocad"):
        assert env.echoscu(aet="NEWPACS").returncode == 0
    assert env.echoscu(aet="ECHOSCU").returncode == 0
    assert any(r.getMessage() == "config_invalid" for r in caplog.records)
    # Removing a caller takes effect too.
    env.config.write_text(text.replace('ae_title = "ECHOSCU"', 'ae_title = "OTHER"'))
    assert _rejected(env.echoscu(aet="ECHOSCU").stderr, CALLING_REASON)


def test_a_reload_replaces_the_policy_settings_and_leaves_the_nodes_unchanged(tmp_path: Path) -> None:
    """The node and its handlers hold the settings they started with: a reload of the callers
    must not change that object under them (it once set ``node.require_known_callers`` in it)."""
    config, spool = tmp_path / "mammocad.toml", tmp_path / "spool"
    config.write_text(config_text(spool, 11112, "redis://127.0.0.1:6379/0"))
    settings = load_settings(config)
    before = settings.model_dump(mode="json")
    policy = CallerPolicy(settings, config)
    assert policy.refusal("STRANGER", "127.0.0.1") is not None
    config.write_text(config_text(spool, 11112, "redis://127.0.0.1:6379/0", callers='[[callers]]\nae_title = "NEW"\n',
                                  extra_node="require_known_callers = false\n"))
    policy.refresh()
    assert settings.model_dump(mode="json") == before
    assert policy.settings.node.require_known_callers is False
    assert [c.ae_title for c in policy.settings.callers] == ["NEW"]
    assert policy.refusal("STRANGER", "127.0.0.1") is None


def test_delivery_rejection_names_the_peer_reason(start_node: Callable[..., NodeEnv], tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A rejected delivery says why in one line (the peer's reason in words), no pynetdicom ERROR lines."""
    from mammocad.config import Destination
    from mammocad.worker.delivery import DeliveryError, store_files
    from tests.factories import make_mammogram, write

    env = start_node()
    files = [write(make_mammogram(rows=64, columns=48), tmp_path / "out" / "a.dcm")]
    wrong_called = Destination(name="n", ae_title="NOTMAMMO", host="127.0.0.1", port=env.port)
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as info:
        store_files(wrong_called, files, calling_ae="STORESCU", timeout_s=5)
    assert "[rejected]" in str(info.value) and "reason 7 (called AE title not recognised)" in str(info.value)
    right = Destination(name="n", ae_title=NODE_AE, host="127.0.0.1", port=env.port)
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as info:
        store_files(right, files, calling_ae="STRANGER", timeout_s=5)
    assert "reason 3 (calling AE title not recognised)" in str(info.value) and "'STRANGER'" in str(info.value)
    assert not [r for r in caplog.records if r.name.startswith("pynetdicom") and r.levelno >= logging.ERROR]
