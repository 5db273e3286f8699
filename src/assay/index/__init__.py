"""The read path: the simple API (PEP 503/691), files and the JSON API."""
