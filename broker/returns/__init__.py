"""Returns: a customer asks to send back what a fulfiller shipped; the fulfiller
or the order's manufacturer accepts (the card is refunded) or refuses (with a note)."""
