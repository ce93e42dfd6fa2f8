"""Broker: a reverse-marketplace order broker.

This package holds the domain and its services. It never imports Flask: the web
and API layers (``web/``, ``api/``) and the scheduler (``jobs/``) call into it.
"""
