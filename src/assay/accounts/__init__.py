"""Accounts: users, project roles, API tokens and how a request proves who it is."""
