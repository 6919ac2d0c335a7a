"""How much encryption at rest costs per field, per lookup and per password.

Run: ``python bench/crypto.py [--n 20000]``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from storage.crypto import Argon2PasswordHasher, FieldCipher, Keyring, normalise_phone

# Typical values: a Thai full name and a Thai postal address of about 120 characters.
THAI_NAME = "นางสาวสมหญิง ใจดีมีสุข"
THAI_ADDRESS = (
    "99/123 หมู่บ้านสุขสันต์ ซอยลาดพร้าว 101 ถนนลาดพร้าว แขวงคลองจั่น "
    "เขตบางกะปิ กรุงเทพมหานคร 10240 อาคารเอ ชั้น 5 ห้อง 501"
)
PHONE = "+66 81 234 5678"
ARGON2_ROUNDS = 10


def _micros_per_call(n: int, call: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


async def _argon2_hash_ms(rounds: int) -> float:
    hasher = Argon2PasswordHasher()
    await hasher.hash("warm-up")
    start = time.perf_counter()
    for _ in range(rounds):
        await hasher.hash("demo-1234")
    return (time.perf_counter() - start) / rounds * 1e3


def measure_fields(n: int) -> dict[str, float]:
    """Return the cost of one field operation, each measured over ``n`` calls.

    Keys ending in ``_us`` are microseconds per call, ``_ms`` milliseconds per call.
    """
    cipher = FieldCipher(Keyring.generate())
    where = {"table": "customers", "row_id": "3f1c2a9e-5b7d-4c11-9e0a-7d2b6f8e1a44"}
    name_token = cipher.encrypt(THAI_NAME, column="full_name", **where)
    address_token = cipher.encrypt(THAI_ADDRESS, column="address", **where)
    phone = normalise_phone(PHONE)
    cipher.blind_index("phone", phone)  # derive and cache the per-field key first

    return {
        "encrypt_name_us": _micros_per_call(
            n, lambda: cipher.encrypt(THAI_NAME, column="full_name", **where)
        ),
        "decrypt_name_us": _micros_per_call(
            n, lambda: cipher.decrypt(name_token, column="full_name", **where)
        ),
        "encrypt_address_us": _micros_per_call(
            n, lambda: cipher.encrypt(THAI_ADDRESS, column="address", **where)
        ),
        "decrypt_address_us": _micros_per_call(
            n, lambda: cipher.decrypt(address_token, column="address", **where)
        ),
        "blind_index_us": _micros_per_call(n, lambda: cipher.blind_index("phone", phone)),
        "argon2_hash_ms": asyncio.run(_argon2_hash_ms(ARGON2_ROUNDS)),
    }


LABELS = {
    "encrypt_name_us": ("encrypt Thai name", "µs"),
    "decrypt_name_us": ("decrypt Thai name", "µs"),
    "encrypt_address_us": (f"encrypt address ({len(THAI_ADDRESS)} chars)", "µs"),
    "decrypt_address_us": (f"decrypt address ({len(THAI_ADDRESS)} chars)", "µs"),
    "blind_index_us": ("blind index (phone)", "µs"),
    "argon2_hash_ms": ("argon2id hash (m=19456, t=2, p=1)", "ms"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000, help="calls per field measurement")
    args = parser.parse_args()

    results = measure_fields(args.n)
    print("| operation | time |")
    print("| --- | ---: |")
    for key, value in results.items():
        label, unit = LABELS.get(key, (key, ""))
        print(f"| {label} | {value:.1f} {unit} |")


if __name__ == "__main__":
    main()
