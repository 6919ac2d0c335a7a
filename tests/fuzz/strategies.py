"""Hypothesis strategies shared by the fuzz tests: hostile text, any JSON, and *near-valid*
payloads (real update shapes with a few fields dropped, added, retyped or replaced).

Random bytes mostly die at the first ``json.loads``; the bugs live one step further, in
code that trusts a field to be there and of the right type. So the payload strategies start
from what the platforms really send (the shapes in ``tests/stubs`` and the OpenAPI examples)
and mutate them a little, several times over.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bot.web.integrations import EXAMPLES
from tests.stubs import line as line_stub
from tests.stubs import telegram as telegram_stub


def scaled(examples: int) -> int:
    """``examples`` under the ``ci``/default profile (100 examples a test), proportionally
    more under ``fuzz``: slow tests (a database, HTTP) ask for fewer than the fast ones."""
    return max(1, examples * settings.default.max_examples // 100)


# --- text ------------------------------------------------------------------------------------

#: Strings that have broken chat bots before: SQL and markup, bidi overrides, zero-width
#: and combining marks, Thai tone marks stacked on nothing, emoji sequences, NUL, the
#: bot's own commands and keywords (so the flows are reached, not only the fallback).
TRICKY = (
    "'; DROP TABLE customers; --",
    "1' OR '1'='1",
    '" OR ""="',
    "%s%s%s%n",
    "{0}{1}{name}",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
    "\u202e\u0627\u0644\u0639\u0631\u0628\u064a\u0629\u202c",
    "\u200b\u200c\u200d\ufeff",
    "\u0e48\u0e49\u0e4a\u0e4b\u0e31\u0e47",
    "ก\u0e48\u0e48\u0e48\u0e48\u0e48",
    "e\u0301\u0302\u0303\u0304",
    "👨\u200d👩\u200d👧\u200d👦🏳️\u200d🌈",
    "\x00\x01\x1b[31m\x7f",
    "\r\n\t",
    "\ud800",
    "０８１２３４５６７８",
    "+66812345678",
    "0812345678",
    "1101700203451",
    "/start",
    "/start link_abc",
    "/bill@SelfcareBot",
    "/pay B100000000125111",
    "/link",
    "/cancel",
    "/lang en",
    "/forget",
    "/",
    "บิล",
    "จ่าย",
    "ยกเลิก",
    "english",
    "ภาษาไทย",
    "ผูกบัญชี",
    "ลบข้อมูล",
    "help",
    "menu",
)

_thai = st.text(st.characters(min_codepoint=0x0E00, max_codepoint=0x0E7F), max_size=20)
_marks = st.text(st.characters(categories=["Mn", "Me", "Cf"]), max_size=8)
_controls = st.text(st.characters(categories=["Cc", "Zl", "Zp", "Zs"]), max_size=4)
_emoji = st.text(
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF) | st.sampled_from("\u200d\ufe0f"),
    max_size=6,
)
_fragment = st.one_of(
    st.sampled_from(TRICKY), _thai, _marks, _controls, st.text(max_size=20), _emoji
)
_long = st.tuples(_fragment, st.integers(50, 2000)).map(lambda pair: pair[0] * pair[1])

#: Text a customer might type, or an attacker paste.
nasty_text = st.one_of(
    st.lists(_fragment, max_size=6).map("".join),
    _long,
)


# --- JSON ------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too: json.loads accepts them
    st.text(max_size=30),
    st.sampled_from(TRICKY),
)
any_json = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
#: Values that a field of another type is often confused with.
_CONFUSED: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2**31,
    2**63,
    -(2**64),
    10**30,
    1.5,
    float("nan"),
    "",
    "1",
    "x",
    [],
    [None],
    {},
    {"id": 1},
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*path, index)))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _set(root: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    _get(root, path[:-1])[path[-1]] = new
    return root


@st.composite
def _mutate_once(draw: st.DrawFn, value: Any, vocabulary: tuple[str, ...]) -> Any:
    path = draw(st.sampled_from(_paths(value)))
    node = _get(value, path)
    ops = ["replace", "confuse"]
    if isinstance(node, dict):
        ops += ["add"] + (["drop"] if node else [])
    if isinstance(node, list):
        ops += ["append"] + (["drop", "duplicate"] if node else [])
    if isinstance(node, str):
        ops += ["text"]
    if isinstance(node, int) and not isinstance(node, bool):
        ops += ["int"]
    op = draw(st.sampled_from(ops))
    if op == "replace":
        return _set(value, path, draw(any_json))
    if op == "confuse":
        return _set(value, path, copy.deepcopy(draw(st.sampled_from(_CONFUSED))))
    if op == "text":
        return _set(value, path, draw(nasty_text))
    if op == "int":
        return _set(value, path, draw(st.integers() | st.sampled_from([0, -1, 2**31, 2**63])))
    if op == "add":
        key = draw(st.sampled_from(vocabulary) | st.text(max_size=12))
        node[key] = draw(any_json)
    elif op == "append":
        node.append(draw(any_json))
    elif op == "drop":
        if isinstance(node, dict):
            del node[draw(st.sampled_from(sorted(node)))]
        else:
            del node[draw(st.integers(0, len(node) - 1))]
    elif op == "duplicate":
        node.append(copy.deepcopy(node[draw(st.integers(0, len(node) - 1))]))
    return value


def _keys(*shapes: Any) -> tuple[str, ...]:
    keys: set[str] = set()
    for shape in shapes:
        for path in _paths(shape):
            keys.update(part for part in path if isinstance(part, str))
    return tuple(sorted(keys))


def near_valid(*bases: Any, max_mutations: int = 3) -> st.SearchStrategy[Any]:
    """One of ``bases`` (deep-copied) with 0 to ``max_mutations`` random mutations: a field
    dropped, added (with a name seen in the bases or a random one), replaced by any JSON,
    by a value of a commonly confused type, by hostile text, or a list grown or shrunk."""
    vocabulary = _keys(*bases)

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        value = copy.deepcopy(draw(st.sampled_from(bases)))
        for _ in range(draw(st.integers(0, max_mutations))):
            value = draw(_mutate_once(value, vocabulary))
        return value

    return build()


def to_body(value: Any) -> bytes:
    """``value`` as a JSON body: UTF-8, with a lone surrogate passed through as the invalid
    bytes it becomes (what a careless sender would post)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


# --- real shapes ---------------------------------------------------------------------------

TELEGRAM_UPDATES: tuple[dict[str, Any], ...] = (
    telegram_stub.text(7001, "สวัสดี", update_id=1),
    telegram_stub.text(7001, "/start link_abc", update_id=2),
    telegram_stub.callback(7001, "pay:B100000000125111", update_id=3),
    telegram_stub.contact(7001, "+66812345678", owner_id=7001),
    telegram_stub.photo(7001),
    telegram_stub.membership(7001, "kicked"),
    telegram_stub.membership(7001, "member"),
)
LINE_EVENTS: tuple[dict[str, Any], ...] = (
    line_stub.text("U0123456789abcdef0123456789abcdef", "บิล"),
    line_stub.postback("U0123456789abcdef0123456789abcdef", "lang:en"),
    line_stub.sticker("U0123456789abcdef0123456789abcdef"),
    line_stub.follow("U0123456789abcdef0123456789abcdef"),
    line_stub.unfollow("U0123456789abcdef0123456789abcdef"),
    line_stub.account_link("U0123456789abcdef0123456789abcdef", "nonce-123"),
    {
        **line_stub.text("U0123456789abcdef0123456789abcdef", "hi"),
        "source": {"type": "group", "groupId": "Cabc", "userId": "U1"},
    },
)
INTEGRATION_EVENTS: tuple[dict[str, Any], ...] = tuple(EXAMPLES.values())

telegram_updates = near_valid(*TELEGRAM_UPDATES)
line_events = near_valid(*LINE_EVENTS)
line_bodies = near_valid(
    *({"destination": "U0", "events": [event]} for event in LINE_EVENTS),
    {"destination": "U0", "events": []},
    {"destination": "U0", "events": list(LINE_EVENTS[:3])},
)
integration_events = near_valid(*INTEGRATION_EVENTS)
#: Lines of ``selfcare import customers|bills``: the ``data`` of the events.
import_lines = near_valid(*(event["data"] for event in INTEGRATION_EVENTS))


def budget(examples: int) -> settings:
    """Settings for a test whose examples share a function-scoped fixture (an app on
    loopback, a database) and are slow: ``scaled(examples)`` of them, health checks that
    would refuse such a test off."""
    return settings(
        max_examples=scaled(examples),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
