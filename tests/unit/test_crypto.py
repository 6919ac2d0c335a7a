import base64
import json
import stat
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from storage.crypto import (
    Argon2PasswordHasher,
    DecryptionError,
    FieldCipher,
    Keyring,
    KeyringError,
    normalise_email,
    normalise_phone,
    normalise_user_id,
)

# One keyring for the module: hypothesis tests cannot take function-scoped fixtures.
KEYRING = Keyring.generate()
WHERE = {"table": "customers", "column": "full_name", "row_id": "c-1"}
FAST = {"time_cost": 1, "memory_cost_kib": 1024}

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def cipher() -> FieldCipher:
    return FieldCipher(KEYRING)


def write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def keyring_document(**overrides: object) -> str:
    document: dict[str, object] = {
        "format": 1,
        "active": "0a1b2c3d",
        "keys": {"0a1b2c3d": base64.b64encode(b"k" * 32).decode()},
        "index_key": base64.b64encode(b"i" * 32).decode(),
        "development": False,
    }
    document.update(overrides)
    return json.dumps(document)


# --- round trips ---------------------------------------------------------------------------


@given(st.text())
@example("สมชาย ใจดี")
@example("😀")
@example("")
@example("x" * 100_000)
def test_text_round_trips(plaintext: str) -> None:
    token = cipher().encrypt(plaintext, **WHERE)
    assert cipher().decrypt(token, **WHERE) == plaintext


@given(st.binary())
@example(b"")
@example(b"\x00" * 4096)
def test_bytes_round_trip(data: bytes) -> None:
    token = cipher().encrypt_bytes(data, **WHERE)
    assert cipher().decrypt_bytes(token, **WHERE) == data


def test_ciphertext_starts_with_version_and_active_key_id() -> None:
    token = cipher().encrypt("สมชาย", **WHERE)
    assert token[:1] == b"\x01"
    assert token.startswith(cipher().key_prefix())
    assert FieldCipher.key_id_of(token) == KEYRING.active_key_id
    # version + key id + nonce + ciphertext + tag
    assert len(token) == 1 + 4 + 12 + len("สมชาย".encode()) + 16


def test_two_encryptions_of_the_same_value_differ() -> None:
    first = cipher().encrypt("0812345678", **WHERE)
    second = cipher().encrypt("0812345678", **WHERE)
    assert first != second
    assert first[5:17] != second[5:17]


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moved_to",
    [
        {"row_id": "c-2"},
        {"column": "address"},
        {"table": "staff"},
        {"column": "address", "row_id": "c-2"},
    ],
)
def test_ciphertext_moved_to_another_place_is_refused(moved_to: dict[str, str]) -> None:
    token = cipher().encrypt("สมชาย ใจดี", **WHERE)
    with pytest.raises(DecryptionError):
        cipher().decrypt(token, **(WHERE | moved_to))


def test_associated_data_cannot_be_shifted_between_table_column_and_row() -> None:
    # Without the dot rule, "a.b"+"c" and "a"+"b.c" would share associated data.
    with pytest.raises(ValueError, match="without dots"):
        cipher().encrypt("x", table="customers.full", column="name", row_id="1")
    with pytest.raises(ValueError, match="without dots"):
        cipher().encrypt("x", table="customers", column="full.name", row_id="1")


def test_empty_row_id_is_refused() -> None:
    with pytest.raises(ValueError, match="row_id"):
        cipher().encrypt("x", table="customers", column="phone", row_id="")


@given(data=st.data())
def test_one_flipped_byte_anywhere_is_refused(data: st.DataObject) -> None:
    token = bytearray(cipher().encrypt("สมชาย ใจดี", **WHERE))
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    token[position] ^= data.draw(st.integers(1, 255), label="mask")
    with pytest.raises(DecryptionError):
        cipher().decrypt(bytes(token), **WHERE)


@given(data=st.data())
def test_truncated_token_is_refused(data: st.DataObject) -> None:
    token = cipher().encrypt("สมชาย ใจดี", **WHERE)
    length = data.draw(st.integers(0, len(token) - 1), label="length")
    with pytest.raises(DecryptionError):
        cipher().decrypt(token[:length], **WHERE)


def test_unknown_key_id_is_refused() -> None:
    token = FieldCipher(Keyring.generate()).encrypt("สมชาย", **WHERE)
    with pytest.raises(DecryptionError, match="not in the keyring"):
        cipher().decrypt(token, **WHERE)


def test_decryption_error_names_only_the_column_and_key_id() -> None:
    token = bytearray(cipher().encrypt("สมชาย ใจดี", **WHERE))
    token[-1] ^= 1
    with pytest.raises(DecryptionError) as caught:
        cipher().decrypt(bytes(token), **WHERE)
    message = str(caught.value)
    assert "customers.full_name" in message
    assert KEYRING.active_key_id in message
    assert "สมชาย" not in message
    assert "c-1" not in message
    assert caught.value.__cause__ is None


def test_key_id_of_a_non_ciphertext_is_refused() -> None:
    with pytest.raises(DecryptionError):
        FieldCipher.key_id_of(b"plain text, not a token")


def test_key_prefix_of_a_malformed_key_id_is_refused() -> None:
    with pytest.raises(ValueError):
        cipher().key_prefix("NOT-HEX!")


# --- rotation ------------------------------------------------------------------------------


def test_after_rotation_new_ciphertexts_carry_the_new_key_and_old_ones_still_decrypt() -> None:
    old_keyring = Keyring.generate()
    field_cipher = FieldCipher(old_keyring)
    old_token = field_cipher.encrypt("สมชาย", **WHERE)

    new_keyring = old_keyring.rotated()
    field_cipher.use(new_keyring)
    new_token = field_cipher.encrypt("สมชาย", **WHERE)

    assert new_keyring.active_key_id != old_keyring.active_key_id
    assert field_cipher.keyring is new_keyring
    assert FieldCipher.key_id_of(new_token) == new_keyring.active_key_id
    assert new_token.startswith(field_cipher.key_prefix())
    assert old_token.startswith(field_cipher.key_prefix(old_keyring.active_key_id))
    assert not old_token.startswith(field_cipher.key_prefix())
    assert field_cipher.decrypt(old_token, **WHERE) == "สมชาย"
    assert field_cipher.decrypt(new_token, **WHERE) == "สมชาย"


def test_after_retiring_the_old_key_its_ciphertexts_are_refused() -> None:
    old_keyring = Keyring.generate()
    old_token = FieldCipher(old_keyring).encrypt("สมชาย", **WHERE)
    retired = old_keyring.rotated().without(old_keyring.active_key_id)

    assert old_keyring.active_key_id not in retired.keys
    with pytest.raises(DecryptionError):
        FieldCipher(retired).decrypt(old_token, **WHERE)


def test_the_active_key_cannot_be_retired() -> None:
    with pytest.raises(KeyringError, match="active"):
        KEYRING.without(KEYRING.active_key_id)


def test_an_unknown_key_cannot_be_retired() -> None:
    with pytest.raises(KeyringError):
        KEYRING.without("ffffffff" if KEYRING.active_key_id != "ffffffff" else "00000000")


def test_rotation_keeps_older_keys_and_the_development_mark() -> None:
    keyring = Keyring.generate(for_development=True).rotated().rotated()
    assert len(keyring.keys) == 3
    assert keyring.generated_for_development


# --- blind indexes -------------------------------------------------------------------------


def test_blind_index_is_deterministic_and_32_bytes() -> None:
    first = cipher().blind_index("phone", "0812345678")
    assert first == FieldCipher(KEYRING).blind_index("phone", "0812345678")
    assert len(first) == 32


def test_blind_index_differs_per_field() -> None:
    assert cipher().blind_index("phone", "a@b.th") != cipher().blind_index("email", "a@b.th")


def test_blind_index_differs_per_index_key() -> None:
    other = FieldCipher(Keyring.generate())
    assert cipher().blind_index("phone", "0812345678") != other.blind_index("phone", "0812345678")


def test_blind_index_does_not_change_with_rotation() -> None:
    field_cipher = FieldCipher(KEYRING)
    before = field_cipher.blind_index("phone", "0812345678")
    field_cipher.use(KEYRING.rotated())
    assert field_cipher.blind_index("phone", "0812345678") == before


def test_blind_index_follows_a_new_index_key_after_use() -> None:
    field_cipher = FieldCipher(KEYRING)
    before = field_cipher.blind_index("phone", "0812345678")
    field_cipher.use(Keyring.generate())
    assert field_cipher.blind_index("phone", "0812345678") != before


def test_blind_index_is_not_keyed_by_an_encryption_key() -> None:
    with pytest.raises(KeyringError, match="index key"):
        Keyring(active_key_id="0a1b2c3d", keys={"0a1b2c3d": b"k" * 32}, index_key=b"k" * 32)


# --- keyring file --------------------------------------------------------------------------


@posix_only
def test_keyring_save_load_round_trip_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    keyring = KEYRING.rotated()
    keyring.save(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.load(path) == keyring
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]


def test_keyring_file_has_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KEYRING.save(path)
    document = json.loads(path.read_text())
    assert document == {
        "format": 1,
        "active": KEYRING.active_key_id,
        "keys": {
            KEYRING.active_key_id: base64.b64encode(KEYRING.keys[KEYRING.active_key_id]).decode()
        },
        "index_key": base64.b64encode(KEYRING.index_key).decode(),
        "development": False,
    }


@posix_only
def test_save_replaces_an_existing_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KEYRING.save(path)
    rotated = KEYRING.rotated()
    rotated.save(path)
    assert Keyring.load(path) == rotated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@posix_only
def test_load_refuses_a_group_readable_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KEYRING.save(path)
    path.chmod(0o640)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring.load(path)


def test_load_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="does not exist"):
        Keyring.load(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "not a JSON object"),
        (keyring_document(format=2), "unsupported format"),
        (keyring_document(keys={"0a1b2c3d": base64.b64encode(b"k" * 16).decode()}), "16 bytes"),
        (keyring_document(index_key=base64.b64encode(b"i" * 31).decode()), "31 bytes"),
        (keyring_document(keys={"0a1b2c3d": "not base64!"}), "not valid base64"),
        (keyring_document(active="ffffffff"), "not in the keyring"),
        (keyring_document(keys={}), "missing or empty"),
        (keyring_document(development="yes"), "true or false"),
        (keyring_document(keys={"KEY": base64.b64encode(b"k" * 32).decode()}), "8 lowercase"),
    ],
)
def test_load_refuses_a_malformed_keyring(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "keyring.json"
    write_private(path, content)
    with pytest.raises(KeyringError, match=reason) as caught:
        Keyring.load(path)
    assert "\n" not in str(caught.value)


def test_keyring_repr_shows_no_key_material() -> None:
    text = repr(KEYRING)
    for key in [*KEYRING.keys.values(), KEYRING.index_key]:
        assert base64.b64encode(key).decode() not in text
        assert key.hex() not in text
        assert repr(key) not in text


@posix_only
def test_load_or_create_creates_a_development_keyring_once(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    created = Keyring.load_or_create(path)

    assert created.generated_for_development
    assert json.loads(path.read_text())["development"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.load_or_create(path) == created
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]


def test_load_or_create_loads_an_existing_production_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    KEYRING.save(path)
    loaded = Keyring.load_or_create(path)
    assert loaded == KEYRING
    assert not loaded.generated_for_development


# --- normalising lookups -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("+66 81 234 5678", "0812345678"),
        ("66812345678", "0812345678"),
        ("0812345678", "0812345678"),
        ("081-234-5678", "0812345678"),
        ("(081) 234.5678", "0812345678"),
        ("  081 234 5678\n", "0812345678"),
        ("+66 (0) 81 234 5678", "0812345678"),
        ("๐๘๑-๒๓๔-๕๖๗๘", "0812345678"),
        ("０８１２３４５６７８", "0812345678"),
        ("02 123 4567", "021234567"),
        ("+66 2 123 4567", "021234567"),
    ],
)
def test_normalise_phone_gives_the_domestic_form(raw: str, normalised: str) -> None:
    assert normalise_phone(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    ["", "12345", "081234567890", "abc", "081-234-567x", "+1 415 555 0100", "812345678", "+"],
)
def test_normalise_phone_refuses_what_is_not_a_thai_number(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_phone(raw)


def test_normalise_email_strips_and_casefolds() -> None:
    assert normalise_email("  Somchai@Example.CO.TH ") == "somchai@example.co.th"


def test_normalise_user_id_strips_casefolds_and_applies_nfkc() -> None:
    assert normalise_user_id(" Ｓomchai ") == "somchai"
    assert normalise_user_id("STRASSE") == normalise_user_id("straße")


# --- passwords -----------------------------------------------------------------------------


async def test_default_password_hash_uses_owasp_argon2id_parameters() -> None:
    password_hash = await Argon2PasswordHasher().hash("demo-1234")
    assert password_hash.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in password_hash


async def test_verify_accepts_the_right_password_and_refuses_a_wrong_one() -> None:
    hasher = Argon2PasswordHasher(**FAST)
    password_hash = await hasher.hash("รหัสผ่าน-1234")
    assert await hasher.verify(password_hash, "รหัสผ่าน-1234")
    assert not await hasher.verify(password_hash, "รหัสผ่าน-1235")


async def test_two_hashes_of_the_same_password_differ() -> None:
    hasher = Argon2PasswordHasher(**FAST)
    assert await hasher.hash("demo-1234") != await hasher.hash("demo-1234")


@pytest.mark.parametrize(
    "bad_hash", ["", "not a hash", "$argon2id$v=19$m=1024,t=1,p=1$bad", "$argon2id$ไทย"]
)
async def test_verify_against_an_invalid_hash_is_false(bad_hash: str) -> None:
    assert not await Argon2PasswordHasher(**FAST).verify(bad_hash, "demo-1234")


async def test_needs_rehash_when_parameters_differ() -> None:
    fast = Argon2PasswordHasher(**FAST)
    fast_hash = await fast.hash("demo-1234")
    assert not fast.needs_rehash(fast_hash)
    assert Argon2PasswordHasher().needs_rehash(fast_hash)
    assert fast.needs_rehash("not a hash")


async def test_dummy_verify_checks_against_a_hash_made_with_the_same_parameters() -> None:
    # No timing assertion (those flake under load): a dummy verify costs what a real one
    # does because it runs argon2 over a hash with this hasher's own parameters.
    hasher = Argon2PasswordHasher()
    real_hash = await hasher.hash("demo-1234")
    await hasher.dummy_verify("wrong-password")
    dummy_hash = hasher._dummy_hash
    assert dummy_hash is not None
    assert dummy_hash.rsplit("$", 2)[0] == real_hash.rsplit("$", 2)[0]  # $argon2id$v=19$m=…
    assert "m=19456,t=2,p=1" in dummy_hash
    assert not await hasher.verify(dummy_hash, "wrong-password")
