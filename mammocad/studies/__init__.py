"""What happened to each study, and the admin's actions on it (``mammocad studies ...``).

Reads the spool (images, results, reports, outbox, dead-letter) and acts through the same
contracts the node and workers use (``mammocad.spool``): it sits below both and imports
neither.
"""
