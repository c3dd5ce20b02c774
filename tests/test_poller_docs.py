"""docs/messages.md agrees with the code that produces the events stream."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import msgspec

from relay.messages import ControlMessage, EventMessage, event_schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "messages.md"


def normalized(node: Any) -> Any:
    """``node`` with every ``description`` dedented and stripped, the way ``inspect`` cleans it.

    msgspec copies a Struct's docstring into ``description``, and its releases differ in whether
    they dedent it; the documented schema must match on meaning, not on that formatting.
    """
    if isinstance(node, list):
        return [normalized(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: inspect.cleandoc(value)
        if key == "description" and isinstance(value, str)
        else normalized(value)
        for key, value in node.items()
    }


class TestMessagesDoc:
    """The message documentation."""

    def test_messages_doc_schema_is_the_printed_schema(self) -> None:
        """The schema shown is what ``clever-relay schema events`` prints, modulo indentation."""
        blocks = re.findall(r"```json\n(.*?)\n```", DOC.read_text(), flags=re.DOTALL)
        assert normalized(msgspec.json.decode(blocks[-1])) == normalized(event_schema())

    def test_messages_doc_lists_every_field(self) -> None:
        """Every field of the normalized and control messages has a table row."""
        text = DOC.read_text()
        for cls in (EventMessage, ControlMessage):
            for field in msgspec.structs.fields(cls):
                assert f"| `{field.name}` |" in text, field.name
