"""The waiting panel: what to do while no record has arrived, and why none may have."""

from __future__ import annotations

from rich.panel import Panel
from rich.text import Text

from trainmon.state import RunState
from trainmon.view.options import ViewOptions
from trainmon_client.endpoints import is_private_default

__all__ = ["waiting_panel"]


def waiting_panel(state: RunState, opts: ViewOptions) -> Panel:
    """What to do while nothing has arrived yet."""
    text = Text()
    if opts.connecting:
        text.append(f"Connecting to {opts.address}\n", style="tm.heading")
        if state.link_note:
            text.append(f"{state.link_note}\n", style="tm.bad")
        else:
            text.append("connected; waiting for records\n", style="tm.dim")
        listen = _listen_address(opts.address)
        text.append(
            f"\nSomething must listen there: a relay (trainmon relay --pub-bind {listen}), "
            "or the training script, with:\n\n",
            style="tm.dim",
        )
        monitor = f"Monitor({listen!r}, bind=True)"
    else:
        text.append(
            f"Waiting for records on {opts.address or 'the configured endpoints'}\n\n",
            style="tm.heading",
        )
        if state.link_note:  # an older client knocking on the old default, say
            text.append(f"{state.link_note}\n\n", style="tm.bad")
        text.append("In the training script:\n\n", style="tm.dim")
        default = not opts.address or is_private_default(opts.address)
        monitor = "Monitor()" if default else f"Monitor({opts.address!r})"
    text.append("    from trainmon_client import Monitor\n")
    text.append(f"    mon = {monitor}\n")
    text.append("    mon.log(loss=loss, accuracy=acc)\n")
    for warning in opts.warnings:
        text.append(f"\n{warning}", style="tm.warn")
    if state.rejected:
        text.append(f"\n{state.rejected:,} messages rejected: {state.last_reject}", style="tm.bad")
    if state.recording_note:
        text.append(f"\n{state.recording_note}", style="tm.bad")
    if state.refused:
        text.append(
            f"\n{state.refused:,} handshakes refused; last: {state.last_refusal}", style="tm.bad"
        )
    return Panel(text, title="No data yet", title_align="left")


def _listen_address(address: str) -> str:
    """Where training would listen for a monitor that connects to ``address`` (the
    first of several): any interface (IPv6 too, for an IPv6 address), the same port; an
    ipc path as it is."""
    first = address.split(", ")[0]
    if first.startswith("tcp://"):
        anywhere = "[::]" if "[" in first else "0.0.0.0"
        return f"tcp://{anywhere}:" + first.rsplit(":", 1)[1]
    return first
