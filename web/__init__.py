"""The Flask application: the API, the pages, and the wiring to `broker`."""

from web.app import create_app

__all__ = ["create_app"]
