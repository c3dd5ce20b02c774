"""docs/messages.md agrees with the code that produces the events stream."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from relay.messages import ControlMessage, EventMessage, event_schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "messages.md"


class TestMessagesDoc:
    """The message documentation."""

    def test_messages_doc_schema_is_the_printed_schema(self) -> None:
        """The JSON Schema shown is exactly what ``clever-relay schema events`` prints."""
        blocks = re.findall(r"```json\n(.*?)\n```", DOC.read_text(), flags=re.DOTALL)
        assert msgspec.json.decode(blocks[-1]) == event_schema()

    def test_messages_doc_lists_every_field(self) -> None:
        """Every field of the normalized and control messages has a table row."""
        text = DOC.read_text()
        for cls in (EventMessage, ControlMessage):
            for field in msgspec.structs.fields(cls):
                assert f"| `{field.name}` |" in text, field.name
