"""The ASGI application: mounts each capability's routes over shared services."""
