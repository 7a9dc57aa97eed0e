"""Prometheus metrics and health endpoints of the node and the workers.

Importing this package imports nothing from prometheus_client: a Celery worker must call
:func:`mammocad.metrics.multiprocess.prepare` before :mod:`mammocad.metrics.definitions`
is first imported (see that module).
"""
