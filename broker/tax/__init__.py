"""Tax: computed at checkout from the destination by a tax provider (broker.tax.provider)."""
