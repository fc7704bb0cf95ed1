"""The archive: the ``archive`` group writes each shard's entries into zstd segments with an
index (``archiver``), in a directory or an S3 bucket (``stores``); ``segments`` is the format
(pure), ``catalog`` reads it back for the operator tools.
"""
