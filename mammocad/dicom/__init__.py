"""DICOM plumbing shared by the node, the workers, the model and the CLI.

- :mod:`~mammocad.dicom.header`: the one reader of laterality, view and orientation.
- :mod:`~mammocad.dicom.sop_classes`: SOP classes and transfer syntaxes the node accepts,
  and which instances are analysed.
- :mod:`~mammocad.dicom.network`: the one place where pynetdicom AEs are built (SCP of the
  node, SCU of delivery and ``dest echo``): contexts, PDU size, timeouts.
- :mod:`~mammocad.dicom.chunked`: the one function that patches pynetdicom's private
  internals, for streaming received data sets to disk.

Nothing here imports the node, the spool, the worker or the model.
"""
