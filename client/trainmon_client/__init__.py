"""trainmon-client: publish training metrics to ``trainmon watch``.

from trainmon_client import Monitor

mon = Monitor(total_epochs=10)          # connects to your own trainmon watch
for epoch in range(10):
    mon.set_epoch(epoch)
    for batch in loader:
        loss = train_step(batch)
        mon.log(loss=loss, accuracy=acc)  # about a microsecond, never blocks or raises
mon.close()                             # also happens at exit
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainmon_client.protocol import PROTOCOL_VERSION, ProtocolError, Record, decode, encode

if TYPE_CHECKING:
    from trainmon_client.monitor import DEFAULT_ENDPOINT, Monitor

__all__ = [
    "DEFAULT_ENDPOINT",
    "Monitor",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Record",
    "__version__",
    "decode",
    "encode",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The Monitor (and pyzmq) load on first use, so a reader of the protocol alone,
    # such as the monitor's state, does not pull in sockets.
    if name in ("Monitor", "DEFAULT_ENDPOINT"):
        from trainmon_client import monitor

        return getattr(monitor, name)
    raise AttributeError(f"module 'trainmon_client' has no attribute {name!r}")
