"""Schema-safety toolset for Flask-Migrate / Alembic.

Knows nothing about the application it serves: it is wired in through
``migrations/env.py``, the ``flask db`` command group and the container
entrypoint, and could be lifted into any Flask-Migrate project.
"""
