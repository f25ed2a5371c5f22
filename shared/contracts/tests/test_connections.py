import base64
import os

import pytest
from contracts.connections import CredentialCipher, CredentialsUnavailable, ProcessorCredentials
from pydantic import SecretStr


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_credentials_are_ciphertext_at_rest_and_round_trip() -> None:
    cipher = CredentialCipher([new_key()])
    secret = "sk_test_" + "a1b2c3d4e5f6g7h8"

    token = cipher.encrypt(ProcessorCredentials(api_key=SecretStr(secret)))

    assert secret not in token
    assert cipher.decrypt(token).api_key.get_secret_value() == secret


def test_older_keys_still_decrypt_and_rotation_moves_to_the_newest() -> None:
    old, new = new_key(), new_key()
    token = CredentialCipher([old]).encrypt(ProcessorCredentials(api_key=SecretStr("k")))
    both = CredentialCipher.from_setting(f"{new},{old}")

    rotated = both.rotate(token)

    assert both.decrypt(token).api_key.get_secret_value() == "k"
    assert CredentialCipher([new]).decrypt(rotated).api_key.get_secret_value() == "k"
    with pytest.raises(CredentialsUnavailable):
        CredentialCipher([new]).decrypt(token)


def test_no_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        CredentialCipher.from_setting(" , ")
