"""The one function that patches pynetdicom's private internals must keep working.

If a pynetdicom upgrade moves ``_config.STORE_RECV_CHUNKED_DATASET`` or
``dimse_messages.NamedTemporaryFile``, the node silently falls back to in-memory receive
(slower, more memory): this test turns that into a loud failure.
"""

from __future__ import annotations

import threading

import pynetdicom
from pynetdicom import _config

from mammocad.dicom import chunked
from mammocad.node import receive


def test_install_succeeds_on_this_pynetdicom() -> None:
    assert receive.install(), f"pynetdicom {pynetdicom.__version__}: private receive hooks moved"
    assert isinstance(_config.STORE_RECV_CHUNKED_DATASET, chunked._Switch)
    # Only threads of a registered node stream: this test thread is none of them.
    assert not bool(_config.STORE_RECV_CHUNKED_DATASET) or bool(_config.STORE_RECV_CHUNKED_DATASET.previous)


def test_a_second_different_install_is_refused() -> None:
    assert receive.install()
    assert not chunked.install_chunked_receive(lambda: True, lambda: None)


def test_current_ae_of_a_plain_thread_is_none() -> None:
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append(chunked.current_ae()))
    t.start()
    t.join()
    assert seen == [None]
