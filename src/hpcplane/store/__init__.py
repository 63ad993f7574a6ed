"""The store: SQLAlchemy Core tables, repositories and migrations; all SQL lives here."""
