"""Code shared by codecell's Python test suites; see :mod:`support.harness`.

Not a test directory: no suite collects it.  A suite's conftest.py puts ``tests/`` on
``sys.path`` and imports ``support.harness``.
"""
