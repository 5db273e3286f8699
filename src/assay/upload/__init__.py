"""The upload path: ``POST /legacy/``, what a distribution is, the atomic commit."""
