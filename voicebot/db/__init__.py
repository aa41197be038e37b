"""Relational storage: SQLAlchemy 2 async models, engine and session factory."""
