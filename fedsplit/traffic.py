"""Bytes on the wire: every message the server sends or receives, sized as it would travel.

Flower's simulation passes messages in memory, so nothing counts them. Here a message's size is its
protobuf encoding (`flwr.common.serde.message_to_proto`), the form Flower serialises for a real
deployment. Each message is split into parts: the raw bytes of every array, attributed by key to a
part (client-model weights, server channels, masks, labels, ...), and `control` for everything else
(framing, metadata, config values), so the parts of a message always add up to its size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, Message
from flwr.common.serde import message_to_proto, recorddict_to_proto

CONTROL = "control"


def message_size(msg: Message) -> int:
    """Bytes of a message as Flower would send it (content and metadata)."""
    try:
        return message_to_proto(msg).ByteSize()
    except Exception:  # noqa: BLE001 - a reply whose metadata is not complete yet: size the content
        return recorddict_to_proto(msg.content).ByteSize() if msg.has_content() else 0


def message_parts(msg: Message, part_of: dict[str, str], default: str = CONTROL) -> dict[str, int]:
    """Bytes of a message by part; array bytes go to part_of[key] (else `default`), the rest to 'control'."""
    total = message_size(msg)
    parts: dict[str, int] = defaultdict(int)
    if msg.has_content():
        for record in msg.content.values():
            if isinstance(record, ArrayRecord):
                for key, array in record.items():
                    parts[part_of.get(key, default)] += len(array.data)
    parts[CONTROL] += total - sum(parts.values())
    return dict(parts)


@dataclass
class Ledger:
    """Every counted message: round, phase, client, direction, bytes by part."""

    rows: list[dict] = field(default_factory=list)

    def add(self, msg: Message, *, round: int, phase: str, node: int, direction: str,
            part_of: dict[str, str], default_part: str = CONTROL) -> int:
        """Count one message to or from a Flower node; returns its size in bytes."""
        parts = message_parts(msg, part_of, default_part)
        self.rows.append({"round": round, "phase": phase, "node": node, "client": None, "direction": direction,
                          "parts": parts, "bytes": sum(parts.values())})
        return self.rows[-1]["bytes"]

    def name_clients(self, node_client: dict[int, int]) -> None:
        """Attach partition ids to rows by node id (known only after the first exchange)."""
        for r in self.rows:
            r["client"] = node_client.get(r["node"], r["client"])

    def total(self, direction: str | None = None, round: int | None = None, phase: str | None = None) -> int:
        """Sum of message bytes, optionally for one direction, round or phase."""
        return sum(r["bytes"] for r in self.rows if (direction is None or r["direction"] == direction)
                   and (round is None or r["round"] == round) and (phase is None or r["phase"] == phase))

    def summary(self) -> dict:
        """Totals per direction, per client and per part, as results.json reports them."""
        per_client: dict[str, dict[str, int]] = {}
        by_part: dict[str, dict[str, int]] = {"uplink": defaultdict(int), "downlink": defaultdict(int)}
        for r in self.rows:
            c = per_client.setdefault(str(r["client"]), {"uplink": 0, "downlink": 0})
            c[r["direction"]] += r["bytes"]
            for part, n in r["parts"].items():
                by_part[r["direction"]][part] += n
        return {"uplink_total": self.total("uplink"), "downlink_total": self.total("downlink"),
                "messages": len(self.rows),
                "per_client": dict(sorted(per_client.items(), key=lambda kv: int(kv[0]))),
                "by_part": {d: dict(sorted(p.items())) for d, p in by_part.items()}}
