"""The signed session cookie: its signer is made once per key, and a key
rotation (the new key, the old one among the fallbacks) still reads cookies
signed with the old key and signs new ones with the new."""

from __future__ import annotations

import pytest
from itsdangerous import BadSignature


def test_the_signer_is_made_once_per_key_and_again_when_the_key_changes(app):
    interface = app.session_interface
    first = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is first
    signed = first.dumps({"who": "ada"})

    old_key = app.secret_key
    app.secret_key = "a-new-key"
    app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    try:
        rotated = interface.get_signing_serializer(app)
        assert rotated is not first
        assert rotated.loads(signed) == {"who": "ada"}  # an old cookie still reads
        with pytest.raises(BadSignature):  # a new one is signed with the new key
            first.loads(rotated.dumps({"who": "bob"}))
    finally:
        app.secret_key = old_key
        app.config["SECRET_KEY_FALLBACKS"] = []
    restored = interface.get_signing_serializer(app)
    assert restored is not rotated and restored.loads(signed) == {"who": "ada"}
