"""mmdshot's HTTP layer: a FastAPI service over the :mod:`selector` library.

Start with :func:`app.main.create_app`; ``mmdshot serve`` (:mod:`app.cli`) runs it.
"""

__version__ = "0.1.0"
