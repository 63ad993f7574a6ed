"""The web console at /console/ and the push stream at /events (routes.py; static/ holds the page)."""
