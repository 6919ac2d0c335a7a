"""``selfcare shell`` on the demo database, as a developer or tester types it: linking with
``demo`` / ``demo-1234`` greets by name, six wrong passwords pause sign-in with a clear
Thai message, and in development the SMS code is printed in the shell. Passwords never
appear in the transcript."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from bot.demo import DEMO_PASSWORD, DEMO_USER_ID, demo_customers
from tests.integration.support import CliResult, run_cli

DEMO_NAME = demo_customers()[0][0].name
DEMO_PHONE = demo_customers()[0][0].phone
PAUSED = "เพื่อความปลอดภัยของบัญชี ระบบพักการเข้าสู่ระบบด้วยรหัสผ่านไว้ชั่วคราวค่ะ กรุณาลองใหม่หลัง"
WRONG = "User ID หรือรหัสผ่านไม่ถูกต้องค่ะ"
# /link, "✅ ยอมรับและทำต่อ" [1], "🔑 รหัสผ่านในแชต" [1]
TO_PASSWORD = ["/link", "1", "1"]


async def shell(env: dict[str, str], cwd: Path, *lines: str) -> CliResult:
    await run_cli(env, "demo", "seed", cwd=cwd)
    result = await run_cli(env, "shell", "--chat-id", "1", stdin="\n".join(lines) + "\n", cwd=cwd)
    assert result.code == 0, result.stderr
    return result


async def test_demo_links_with_its_password_and_is_greeted_by_name(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    result = await shell(cli_env, tmp_path, *TO_PASSWORD, DEMO_USER_ID, DEMO_PASSWORD, "/start")

    out = result.stdout
    assert "กรุณาพิมพ์ User ID บริการด่วนออนไลน์ของคุณค่ะ" in out
    assert "เรียบร้อยค่ะ! แชตนี้เชื่อมกับบัญชีบริการด่วนออนไลน์ของคุณแล้ว" in out
    greeting = f"สวัสดีค่ะ คุณ{DEMO_NAME} ยินดีต้อนรับกลับมาค่ะ"
    linked_at = out.index("เรียบร้อยค่ะ! แชตนี้เชื่อม")
    assert greeting not in out[:linked_at]  # a stranger until linked
    assert out[linked_at:].count(greeting) == 2  # right after linking, and on /start
    assert "🗑" in out  # the password message is taken back
    assert DEMO_PASSWORD not in out + result.stderr
    assert "› ••••••••" in out


async def test_six_wrong_passwords_pause_sign_in_with_a_clear_thai_message(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    wrong = [f"wrong-{n}-password" for n in range(6)]
    result = await shell(cli_env, tmp_path, *TO_PASSWORD, DEMO_USER_ID, *wrong)

    out = result.stdout
    assert out.count(WRONG) == 5  # four times alone, the fifth with the pause
    assert out.count(PAUSED) == 2  # the fifth and the sixth
    until = re.search(PAUSED + r" (\d{1,2} \S+ 25\d\d \d\d:\d\d น\.)", out)
    assert until is not None, out  # a Bangkok time, Buddhist era
    assert DEMO_NAME not in out.split(wrong[0])[-1]  # never linked
    for password in wrong:
        assert password not in out + result.stderr


async def test_in_development_the_sms_code_is_printed_in_the_shell_and_links(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "SELFCARE_ENV": "development"}
    await run_cli(env, "demo", "seed", cwd=tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "shell",
        "--chat-id",
        "sms-1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen: list[str] = []

    async def until(pattern: str) -> re.Match[str]:
        async with asyncio.timeout(60):
            while True:
                found = re.search(pattern, "".join(seen))
                if found is not None:
                    return found
                line = await proc.stdout.readline()  # type: ignore[union-attr]
                assert line, "".join(seen)
                seen.append(line.decode())

    async def type_line(text: str) -> None:
        proc.stdin.write(text.encode() + b"\n")  # type: ignore[union-attr]
        await proc.stdin.drain()  # type: ignore[union-attr]

    try:
        await until(r"\[1\]")
        # /link, accept [1], "📱 รหัส SMS" is [3] in development (an SMS stand-in is there)
        for line in ("/link", "1", "3"):
            await type_line(line)
        await until("แชร์เบอร์")
        await type_line(DEMO_PHONE)
        sms = await until(r"📱 SMS to \d\dx-xxx-\d{4} \(development, not sent\): (\d{6}) ")
        await type_line(sms.group(1))
        await until("เรียบร้อยค่ะ! แชตนี้เชื่อม")
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert DEMO_PHONE not in "".join(seen).replace(f"› {DEMO_PHONE}", "")
