"""What log() publishes is what was passed, as at the call: numpy, tensors (CPU, and a
stand-in for one on a GPU), steps and epochs of any integral type, and the warnings for
what cannot be used."""

from __future__ import annotations

import logging
import threading

import pytest

from tests.helpers import Receiver
from trainmon_client import Monitor


def test_numpy_values_changed_in_place_are_sent_as_at_the_call(
    receiver: Receiver, endpoint: str
) -> None:
    """An accumulator that is a 0-d numpy array, updated in place after each log(), is
    published with the value it had at each call (not a later one)."""
    np = pytest.importorskip("numpy")
    total = np.zeros(())
    scalar = np.float32(0.5)
    with Monitor(endpoint, run="r") as mon:
        for _ in range(2000):
            total += 1.0
            mon.log(total=total, half=scalar)
    receiver.until_bye()
    values = [r.metrics["total"] for r in receiver.metrics()]
    assert values == [float(i) for i in range(1, 2001)]
    assert {r.metrics["half"] for r in receiver.metrics()} == {0.5}


def test_torch_cpu_tensors_changed_in_place_are_sent_as_at_the_call(
    receiver: Receiver, endpoint: str
) -> None:
    """A 0-d CPU tensor accumulated in place (``acc += loss``), a loss that requires
    grad, and 0-d integer tensors as step and epoch: all as at the call."""
    torch = pytest.importorskip("torch")
    acc = torch.zeros(())
    weight = torch.ones((), requires_grad=True)
    with Monitor(endpoint, run="r") as mon:
        for step in range(500):
            loss = weight * 0.5
            acc += loss.detach()
            mon.log(acc=acc, loss=loss, step=torch.tensor(step * 2), epoch=torch.tensor(1))
    receiver.until_bye()
    records = receiver.metrics()
    assert [r.metrics["acc"] for r in records] == [0.5 * i for i in range(1, 501)]
    assert {r.metrics["loss"] for r in records} == {0.5}
    assert [r.step for r in records] == list(range(0, 1000, 2))
    assert {r.epoch for r in records} == {1}


class StandInCudaTensor:
    """Looks like a torch tensor on a GPU; records which thread called which method.

    Reading its value (item, float, cpu, tolist) on the training thread would make a
    real one wait for the GPU.
    """

    __module__ = "torch"
    is_cuda = True

    class device:  # (read as tensor.device.type, like a torch.device)
        type = "cuda"

    def __init__(self, value: float, calls: list[tuple[str, int]]) -> None:
        self.value = value
        self.calls = calls

    def _called(self, name: str) -> None:
        self.calls.append((name, threading.get_ident()))

    def detach(self) -> StandInCudaTensor:
        self._called("detach")
        return self

    def clone(self) -> StandInCudaTensor:
        self._called("clone")
        return StandInCudaTensor(self.value, self.calls)

    def numel(self) -> int:
        self._called("numel")
        return 1

    def item(self) -> float:
        self._called("item")
        return self.value

    def __float__(self) -> float:
        self._called("__float__")
        return self.value

    def cpu(self) -> StandInCudaTensor:
        self._called("cpu")
        return self

    def tolist(self) -> float:
        self._called("tolist")
        return self.value

    def __add__(self, other: object) -> StandInCudaTensor:
        return self  # (like a tensor: adding gives a tensor, no value read)

    __radd__ = __add__

    def __iadd__(self, other: float) -> StandInCudaTensor:
        self.value += other  # in place, as the GPU would, later
        return self


def test_a_gpu_tensor_is_copied_on_the_device_and_read_on_the_io_thread(
    receiver: Receiver, endpoint: str
) -> None:
    """The training thread only looks at the shape of a tensor on a GPU, detaches and
    clones it (no item(), float(), cpu() or tolist(), which would wait for the GPU); the
    I/O thread reads the copy, so the value sent is the one at the call."""
    calls: list[tuple[str, int]] = []
    acc = StandInCudaTensor(0.0, calls)
    training = threading.get_ident()
    with Monitor(endpoint, run="r") as mon:
        for _ in range(100):
            acc += 1.0
            mon.log(acc=acc)
    receiver.until_bye()
    assert [r.metrics["acc"] for r in receiver.metrics()] == [float(i) for i in range(1, 101)]
    on_training = {name for name, thread in calls if thread == training}
    assert on_training == {"numel", "detach", "clone"}  # (numel: the shape, no wait)
    assert {name for name, thread in calls if thread != training} >= {"item"}


def test_current_loss_is_the_last_logged_at_once(endpoint: str) -> None:
    """current_loss()/current_accuracy() give the last value logged right after log(),
    also when the last call logged something else and for an in-place accumulator."""
    with Monitor(endpoint, run="r") as mon:
        assert mon.current_loss() is None
        mon.log(loss=0.5, accuracy=0.25)
        assert (mon.current_loss(), mon.current_accuracy()) == (0.5, 0.25)
        mon.log(val_loss=9.0)
        assert mon.current_loss() == 0.5
        for step in range(1000):
            mon.log(loss=float(step))
            assert mon.current_loss() == float(step)
        mon.log(other=1.0)
        assert mon.current_loss() == 999.0
        calls: list[tuple[str, int]] = []
        mon.log(loss=StandInCudaTensor(0.125, calls))
        assert mon.current_loss() == 0.125


def test_steps_and_epochs_of_any_integral_type(receiver: Receiver, endpoint: str) -> None:
    """numpy integers, whole floats and fractional epochs are taken: a Hugging Face
    Trainer's epoch 2.5 goes out as 2.5 (``ep`` 2, ``ef`` 2.5)."""
    np = pytest.importorskip("numpy")
    with Monitor(endpoint, run="r") as mon:
        mon.log(loss=1.0, step=np.int64(10), epoch=np.int32(1))
        mon.log(loss=1.0, step=11.0, epoch=2.5)
        mon.set_epoch(np.float64(3.0))
        mon.log(loss=1.0, step=np.uint8(12))
    receiver.until_bye()
    records = receiver.metrics()
    assert [(r.step, r.epoch) for r in records] == [(10, 1), (11, 2.5), (11, 3), (12, 3)]
    assert type(records[1].epoch) is float and type(records[2].epoch) is int


def test_a_step_that_cannot_be_used_is_said_and_replaced_by_the_automatic_one(
    receiver: Receiver, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A step that is no whole number (a string, 2.5, -1) is warned about once per
    argument and type, naming the call's metrics and the value; the record goes out
    with the automatic step, never silently."""
    with caplog.at_level(logging.WARNING, logger="trainmon_client"):
        with Monitor(endpoint, run="r") as mon:
            mon.log(loss=1.0, step=5)
            mon.log(loss=1.0, accuracy=0.5, step="abc")
            mon.log(loss=1.0, step="0.5")  # (the same type: said once)
            mon.log(loss=1.0, step=2.5)
            mon.log(loss=1.0, step=-1)
            mon.log(loss=1.0, epoch="two")
        receiver.until_bye()
    assert [r.step for r in receiver.metrics()] == [5, 6, 7, 8, 9, 10]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 4, said
    assert "step='abc' (str) in log(loss, accuracy)" in said[0]
    assert "automatic step" in said[0]
    assert "step=2.5 (float) in log(loss)" in said[1]
    assert "step=-1 (int)" in said[2]
    assert "epoch='two' (str)" in said[3]


def test_each_warning_names_its_metric(
    receiver: Receiver, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Different bad names and values each get their own line naming them; strings are
    not numbers, even "0.5"."""
    with caplog.at_level(logging.WARNING, logger="trainmon_client"):
        with Monitor(endpoint, run="r") as mon:
            for _ in range(3):
                mon.log(
                    {"a\x1b": 1.0, "b\x07": 1.0, "c\n": 1.0, "": 1.0},
                    loss=1.0,
                    text="0.5",
                    word="abc",
                )
        receiver.until_bye()
    assert [set(r.metrics) for r in receiver.metrics()] == [{"loss"}] * 3
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 6, said
    for shown in ("'a\\x1b'", "'b\\x07'", "'c\\n'", "''", "'text': str '0.5'", "'word'"):
        assert sum(shown in line for line in said) == 1, (shown, said)
