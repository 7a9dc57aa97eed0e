"""The node's outbox gauges follow the destinations of its config file, as the workers do.

``mammocad dest add`` (or a hand edit) takes effect in running workers; the node's
``/metrics`` listed the destinations it started with, because its caller policy takes only
the callers from a reload: a new destination had no series to alert on until its first item,
and a removed one stayed listed until the node restarted.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.metrics.scrape import samples
from tests.node.conftest import NodeEnv
from tests.services import free_port


def _destination(name: str, port: int) -> str:
    return f'[[destinations]]\nname = "{name}"\nae_title = "{name.upper()}"\nhost = "127.0.0.1"\nport = {port}\n'


def _outbox_destinations(port: int) -> set[str]:
    return {dict(labels)["destination"] for (name, labels), _ in samples(port).items()
            if name == "mammocad_outbox_items"}


def test_a_destination_added_or_removed_while_the_node_runs_shows_in_its_metrics(
        start_node: Callable[..., NodeEnv]) -> None:
    metrics = free_port()
    env = start_node(callers=f'[metrics]\nport = {metrics}\n\n[[callers]]\nae_title = "ECHOSCU"\n\n'
                             f'{_destination("pacs", 4242)}')
    assert _outbox_destinations(metrics) == {"pacs"}
    env.config.write_text(env.config.read_text().replace(_destination("pacs", 4242), _destination("viewer", 4243)))
    assert env.echoscu().returncode == 0  # an association: the node has re-read its file
    assert _outbox_destinations(metrics) == {"viewer"}
