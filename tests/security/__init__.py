# Makes tests/security a package, so its module names (security.test_network, ...) never clash
# with other test directories' conftest.py / test_*.py of the same basename.
