"""docs/operations.md and deploy/ keep telling the truth about the code.

Every ``selfcare …`` / ``selfcare-admin …`` command they show parses with the real CLI
parser, every ``SELFCARE_*`` variable is a setting, every ``selfcare_*`` name is a metric
``/metrics`` exposes, the systemd units run real commands (and pass ``systemd-analyze
verify``), the env-file example sets every setting and loads, and the SQL checks run on a
migrated PostgreSQL database.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from bot.cli import build_parser
from bot.metrics import Metrics
from bot.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "operations.md"
DEPLOY = ROOT / "deploy"
BINARY = "/opt/selfcare/venv/bin/selfcare"
ENV_FILE = "/etc/selfcare/selfcare.env"
UNITS = ("selfcare-web@.service", "selfcare-worker@.service", "selfcare-migrate.service")
#: What an instance name stands for in each template unit (``%i``).
INSTANCE = {"selfcare-web@.service": "8441", "selfcare-worker@.service": "9101"}

# `selfcare ARGS` or `selfcare-admin ARGS` where the program is the command word: at the
# start, after a pipe or `;`/`&&`/`$(`, after `sudo [-options]`, or as a path to the binary.
COMMAND = re.compile(
    r"(?:^|[|;&(]|\bsudo(?:[ \t]+-[\w-]+)*|\bexec)[ \t]*(?:[\w./-]*/)?"
    r"(?P<prog>selfcare(?:-admin)?)[ \t]+(?P<rest>[^|;&>)`#\n]*)",
    re.MULTILINE,
)
# `docker run … selfcare:TAG ARGS`: the image's arguments go to `selfcare`.
DOCKER_RUN = re.compile(r"docker run .*?\bselfcare:[\w.-]+(?P<rest>[^\n#]*)")
FENCE = re.compile(r"^[ \t]*```(?P<lang>\w*)\n(?P<body>.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")


DOC_TEXT = DOC.read_text(encoding="utf-8")


def doc_text() -> str:
    return DOC_TEXT


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.iterdir() if p.is_file())


def fenced(markdown: str, *langs: str) -> list[str]:
    return [m["body"] for m in FENCE.finditer(markdown) if m["lang"] in langs]


def doc_command_lines() -> list[str]:
    """Shell lines of the fenced blocks (comments removed) and every inline code span."""
    markdown = doc_text()
    lines = [
        re.sub(r"(^|\s)#.*$", "", line)
        for body in fenced(markdown, "sh", "bash", "console", "")
        for line in body.replace("\\\n", " ").splitlines()
    ]
    prose = FENCE.sub("", markdown)
    return lines + INLINE.findall(prose)


def deploy_comment_examples() -> list[str]:
    """Example commands in the deploy files' comments: lines that start with ``#   ``."""
    return [
        line.removeprefix("#").strip()
        for path in deploy_files()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("#   ")
    ]


def argvs(lines: list[str]) -> list[list[str]]:
    found = []
    for line in lines:
        for match in COMMAND.finditer(line):
            found.append(shlex.split(match["rest"]))
        for match in DOCKER_RUN.finditer(line):
            found.append(shlex.split(match["rest"]))
    return found


def parse_error(argv: list[str]) -> str | None:
    """None when the real parser accepts ``argv``, else what it printed."""
    parser = build_parser()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return stderr.getvalue().strip().splitlines()[-1]
    return None


def command_key(argv: list[str]) -> tuple[str, ...]:
    """(command, action) of a parsed command line, or (command,) for one without actions."""
    namespace: argparse.Namespace = build_parser().parse_args(argv)
    action = getattr(namespace, "action", None)
    return (namespace.command, action) if action else (namespace.command,)


def exec_starts(unit: Path) -> list[list[str]]:
    instance = INSTANCE.get(unit.name, "")
    commands = []
    for line in unit.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("ExecStart", "ExecStartPre", "ExecStartPost", "ExecStop"):
            commands.append(shlex.split(value.lstrip("-@:+!").replace("%i", instance)))
    return commands


def exposed_metric_names() -> set[str]:
    """The series names a scrape of ``/metrics`` can show."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# --- commands -------------------------------------------------------------------------------


def test_every_command_in_the_doc_and_deploy_files_parses() -> None:
    found = argvs(doc_command_lines() + deploy_comment_examples())
    bad = {shlex.join(argv): parse_error(argv) for argv in found if parse_error(argv)}
    assert bad == {}
    assert len(found) >= 20, "the extraction found fewer commands than the doc shows"


def test_the_doc_covers_the_operators_commands() -> None:
    covered = {command_key(argv) for argv in argvs(doc_command_lines())}
    needed = {
        ("serve",),
        ("worker",),
        ("db", "upgrade"),
        ("keys", "init"),
        ("keys", "status"),
        ("keys", "rotate"),
        ("keys", "retire"),
        ("audit", "verify"),
        ("telegram", "set-webhook"),
        ("integrations", "list"),
        ("integrations", "replay"),
    }
    assert needed - covered == set()


def test_the_extraction_refuses_a_wrong_command() -> None:
    # The checks above are only worth something if a wrong command line fails them.
    (argv,) = argvs(["sudo selfcare-admin keys rotate --batch 500 --fast"])
    assert parse_error(argv) is not None
    assert argvs(["install -d -o selfcare -g selfcare -m 0700 /var/lib/selfcare"]) == []


def test_the_units_run_real_commands() -> None:
    for name in UNITS:
        unit = DEPLOY / name
        content = unit.read_text(encoding="utf-8")
        (command,) = exec_starts(unit)
        assert command[0] == BINARY, name
        assert parse_error(command[1:]) is None, (name, command)
        assert f"EnvironmentFile={ENV_FILE}" in content, name
        assert "User=selfcare" in content, name
        for needed in re.findall(r"^(?:Requires|PartOf|WantedBy)=(\S+)$", content, re.M):
            assert (DEPLOY / needed).exists() or needed.endswith(
                ("network-online.target", "multi-user.target")
            ), (name, needed)
    assert {tuple(c[1:]) for u in UNITS for c in exec_starts(DEPLOY / u)} == {
        ("serve", "--port", "8441"),
        ("worker", "--metrics-port", "9101"),
        ("db", "upgrade"),
    }


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The real binary and env file stand in for the installed paths; template units are
    # checked as an instance.
    selfcare = Path(sys.executable).with_name("selfcare")
    assert selfcare.exists(), "the selfcare script is not in the virtualenv"
    names = []
    for path in [*(DEPLOY / u for u in UNITS), DEPLOY / "selfcare.target"]:
        content = path.read_text(encoding="utf-8")
        content = content.replace(BINARY, str(selfcare))
        content = content.replace(ENV_FILE, str(DEPLOY / "selfcare.env.example"))
        name = path.name.replace("@.", f"@{INSTANCE.get(path.name, '')}.")
        (tmp_path / name).write_text(content, encoding="utf-8")
        names.append(str(tmp_path / name))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names], capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stderr.strip()) == (0, "")


def test_selfcare_admin_runs_what_the_units_run() -> None:
    script = DEPLOY / "selfcare-admin"
    content = script.read_text(encoding="utf-8")
    assert os.access(script, os.X_OK)
    assert f'{BINARY} "$@"' in content
    assert f"EnvironmentFile={ENV_FILE}" in content
    assert subprocess.run(["sh", "-n", str(script)], timeout=30).returncode == 0


def test_the_containerfile_runs_selfcare_without_secrets_as_a_user() -> None:
    content = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", content, re.M)
    assert re.search(r'^ENTRYPOINT \["selfcare"\]$', content, re.M)
    (cmd,) = re.findall(r"^CMD (\[.*\])$", content, re.M)
    assert parse_error(yaml.safe_load(cmd)) is None
    users = re.findall(r"^USER (\S+)$", content, re.M)
    assert users and users[-1] not in ("root", "0")
    copied = re.findall(r"^COPY (.+)$", content, re.M)
    assert copied and all(" . " not in f" {c} " and "var" not in c.split() for c in copied)
    assert "keyring" not in " ".join(copied) and ".env" not in " ".join(copied)


# --- settings, metrics, alerts --------------------------------------------------------------


def all_texts() -> dict[str, str]:
    texts = {str(DOC.relative_to(ROOT)): doc_text()}
    texts |= {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in deploy_files()}
    return texts


def test_every_variable_named_is_a_setting() -> None:
    settings = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = {
        (where, name)
        for where, content in all_texts().items()
        for name in re.findall(r"\bSELFCARE_[A-Z0-9_]+", content)
        if name not in settings
    }
    assert unknown == set()


def test_every_metric_named_is_exposed() -> None:
    exposed = exposed_metric_names()
    assert "selfcare_updates_total" in exposed  # the naming rule itself is right
    named = {
        (where, name)
        for where, content in all_texts().items()
        for name in re.findall(r"\bselfcare_[a-z0-9_]+", content)
    }
    assert {(w, n) for w, n in named if n not in exposed} == set()
    assert {n for _, n in named} >= {
        "selfcare_outbox_pending",
        "selfcare_rate_limited_total",
        "selfcare_send_errors_total",
    }


def test_alert_rules_use_our_metrics_and_link_to_runbook_entries() -> None:
    rules = yaml.safe_load((DEPLOY / "selfcare-alerts.yml").read_text(encoding="utf-8"))
    anchors = {slug(h) for h in re.findall(r"^#{2,4} (.+)$", doc_text(), re.M)}
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 10
    for rule in alerts:
        runbook = rule["annotations"]["runbook"]
        assert runbook.startswith("docs/operations.md#"), rule["alert"]
        assert runbook.split("#", 1)[1] in anchors, rule["alert"]
        assert rule["alert"] in doc_text(), rule["alert"]


def test_links_inside_the_doc_lead_somewhere() -> None:
    markdown = doc_text()
    anchors = {slug(h) for h in re.findall(r"^#{1,4} (.+)$", markdown, re.M)}
    for target in re.findall(r"\]\(([^)]+)\)", markdown):
        path, _, anchor = target.partition("#")
        if path:
            assert (DOC.parent / path).resolve().exists(), target
        elif anchor:
            assert anchor in anchors, target


def test_the_env_example_sets_every_setting_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    example = DEPLOY / "selfcare.env.example"
    content = example.read_text(encoding="utf-8")
    for name in Settings.model_fields:
        variable = ENV_PREFIX + name.upper()
        assert re.search(rf"^(# )?{variable}=", content, re.M), variable
    assert '"' not in "".join(re.findall(r"^SELFCARE_\w+=(.*)$", content, re.M))
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    settings = Settings(_env_file=example)  # type: ignore[call-arg]
    assert settings.is_production
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.operator_name == "CHANGE_ME registered company name"
    assert settings.tls_cert is not None and settings.telegram_token is not None


# --- SQL checks ---------------------------------------------------------------------------


async def test_the_sql_checks_run_on_a_migrated_database(pg_schema: str) -> None:
    from storage import migrate
    from storage.db import create_engine
    from tests.conftest import PG_URL

    url = f"{PG_URL}?search_path={pg_schema}"
    await migrate.upgrade(url)
    queries = fenced(doc_text(), "sql")
    assert len(queries) >= 3
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            for query in queries:  # a wrong table or column name raises here
                await conn.execute(text(query))
            oldest_due = next(q for q in queries if "oldest_due_seconds" in q)
            (seconds,) = (await conn.execute(text(oldest_due))).one()
            assert float(seconds) == 0.0  # an empty outbox waits for nothing
    finally:
        await engine.dispose()
