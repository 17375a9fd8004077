"""Helpers shared by the tests and the benchmarks, one job a module.

``repository`` (the checkout and copies of it), ``revisions`` (the shipped
revision chain), ``processes`` (child processes, free ports, waiting for HTTP)
and ``databases`` (creating, dropping and querying databases). Tests and
benchmarks import them through ``tests.helpers``. The toolset
(``safe_migrations/``) never imports them.
"""
