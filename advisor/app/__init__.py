"""The application layer: the pipeline that wires advisor and strategies, run folders, predict, the CLI.

It is the only importer of :mod:`strategies`. Nothing is imported here, so that
``advise --help`` and argument errors answer before TensorFlow is loaded.
"""
