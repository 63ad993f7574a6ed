"""The domain: pure Python, no framework and no SQL."""
