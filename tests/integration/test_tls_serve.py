"""``selfcare serve`` terminates TLS with Mozilla's "intermediate" profile: a client that
only speaks TLS 1.1 (or offers only a weak cipher) is refused by the server, TLS 1.2 and
1.3 are served. The real process, with the development certificate it makes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.channels_support import free_port, insecure_client_context, start_selfcare

REFUSED = {
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "UNEXPECTED_EOF_WHILE_READING",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One ``selfcare serve`` for the module (TLS does not depend on the database, so
    SQLite); yields its port."""
    from storage.crypto import Keyring

    folder = tmp_path_factory.mktemp("tls")
    keyring = folder / "keyring.json"
    Keyring.generate(for_development=True).save(keyring)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFCARE_")}
    env.update(
        SELFCARE_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'selfcare.db'}",
        SELFCARE_KEYRING_FILE=str(keyring),
        SELFCARE_ENV="test",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if "selfcare serving on" in line:
            break
    else:
        raise AssertionError("selfcare serve did not start:\n" + "".join(output))
    try:
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        process.stdout.close()


def handshake(
    port: int,
    *,
    minimum: ssl.TLSVersion,
    maximum: ssl.TLSVersion,
    ciphers: str | None = None,
) -> tuple[str | None, str]:
    """(TLS version, cipher) the server agreed to; raises ssl.SSLError when refused."""
    context = insecure_client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 / TLSv1_1 on purpose
        context.minimum_version = minimum
        context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        cipher = tls.cipher()
        return tls.version(), cipher[0] if cipher else ""


async def test_a_client_limited_to_tls_1_1_is_refused_by_the_server(
    server: int,
) -> None:
    port = server
    with pytest.raises(ssl.SSLError) as refused:
        await asyncio.to_thread(
            handshake,
            port,
            # The client really offers TLS 1.0/1.1 (OpenSSL's own floor lowered for it)…
            minimum=ssl.TLSVersion.TLSv1,
            maximum=ssl.TLSVersion.TLSv1_1,
            ciphers="ALL:@SECLEVEL=0",
        )
    # …and the server ends the handshake (asyncio's TLS may close before its alert is
    # flushed, so the client sees either the protocol_version alert or the close).
    assert refused.value.reason in REFUSED


async def test_tls_1_2_and_1_3_are_served_with_forward_secret_aead_ciphers(
    server: int,
) -> None:
    port = server
    v12, cipher12 = await asyncio.to_thread(
        handshake, port, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2
    )
    v13, _ = await asyncio.to_thread(
        handshake, port, minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3
    )
    assert (v12, v13) == ("TLSv1.2", "TLSv1.3")
    assert cipher12.startswith("ECDHE-") and ("GCM" in cipher12 or "CHACHA20" in cipher12)


async def test_a_cbc_cipher_without_forward_secrecy_is_refused(
    server: int,
) -> None:
    port = server
    with pytest.raises(ssl.SSLError) as refused:
        await asyncio.to_thread(
            handshake,
            port,
            minimum=ssl.TLSVersion.TLSv1_2,
            maximum=ssl.TLSVersion.TLSv1_2,
            ciphers="AES128-SHA:@SECLEVEL=0",
        )
    assert refused.value.reason in REFUSED


async def test_health_and_webhooks_answer_over_tls(server: int) -> None:
    port = server
    connector = aiohttp.TCPConnector(ssl=insecure_client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"https://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        # Telegram is not configured in this process: the route says so, over TLS.
        async with session.post(f"https://127.0.0.1:{port}/webhooks/telegram", data=b"{}") as r:
            assert r.status == 404


def _peer_certificate(port: int) -> bytes:
    context = insecure_client_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def _install(source: tuple[Path, Path], cert: Path, key: Path) -> bytes:
    """Copy a certificate and key to the paths serve reads (as a certbot deploy hook
    does); returns the certificate in DER, what a client sees."""
    cert.write_bytes(source[0].read_bytes())
    key.write_bytes(source[1].read_bytes())
    return ssl.PEM_cert_to_DER_cert(source[0].read_text())


def _two_certificates(folder: Path) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    from bot.tls import development_certificate
    from storage.crypto import Keyring

    Keyring.generate(for_development=True).save(folder / "keyring.json")
    return (
        development_certificate(folder / "old", ["selfcare.test"]),
        development_certificate(folder / "new", ["selfcare.test"]),
    )


async def test_sighup_loads_a_renewed_certificate_and_keeps_the_old_on_a_bad_one(
    tmp_path: Path,
) -> None:
    old, new = await asyncio.to_thread(_two_certificates, tmp_path)
    live_cert, live_key = tmp_path / "cert.pem", tmp_path / "key.pem"
    old_der = await asyncio.to_thread(_install, old, live_cert, live_key)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFCARE_")}
    env.update(
        SELFCARE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'selfcare.db'}",
        SELFCARE_KEYRING_FILE=str(tmp_path / "keyring.json"),
        SELFCARE_ENV="test",
        SELFCARE_TLS_CERT=str(live_cert),
        SELFCARE_TLS_KEY=str(live_key),
    )
    port = free_port()
    process = await start_selfcare(
        env, "serve", "--port", str(port), cwd=tmp_path, ready="selfcare serving on"
    )
    try:
        assert await asyncio.to_thread(_peer_certificate, port) == old_der

        new_der = await asyncio.to_thread(_install, new, live_cert, live_key)
        process.process.send_signal(signal.SIGHUP)
        await process.wait_for("TLS certificate reloaded")
        assert await asyncio.to_thread(_peer_certificate, port) == new_der

        # The new certificate with the old key: refused, the new pair keeps serving.
        await asyncio.to_thread(_install, (new[0], old[1]), live_cert, live_key)
        process.process.send_signal(signal.SIGHUP)
        await process.wait_for("TLS certificate not reloaded")
        assert await asyncio.to_thread(_peer_certificate, port) == new_der
    finally:
        assert await process.stop() == 0, process.text
