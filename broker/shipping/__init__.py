"""Shipping methods: what a manufacturer charges to ship, where, and how fast."""
