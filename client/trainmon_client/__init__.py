"""trainmon-client: publish training metrics to ``trainmon watch``.

    from trainmon_client import Monitor

    mon = Monitor(total_epochs=10)          # connects to tcp://127.0.0.1:5555
    for epoch in range(10):
        mon.set_epoch(epoch)
        for batch in loader:
            loss = train_step(batch)
            mon.log(loss=loss, accuracy=acc)  # ~1 µs, never blocks, never raises
    mon.close()                             # also happens at exit
"""

from trainmon_client.protocol import PROTOCOL_VERSION, ProtocolError, Record, decode, encode
from trainmon_client.publisher import DEFAULT_ENDPOINT, Monitor

__all__ = [
    "DEFAULT_ENDPOINT",
    "PROTOCOL_VERSION",
    "Monitor",
    "ProtocolError",
    "Record",
    "__version__",
    "decode",
    "encode",
]

__version__ = "0.1.0"
