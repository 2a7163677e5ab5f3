"""Bulk work below the event loop (serve.priority): decode, parse and model threads run niced.

Per-thread nice values are a Linux feature; elsewhere these tests are skipped.
"""

import base64
import sys
import threading
from pathlib import Path

import httpx
import pytest

from addressclip.cli import main
from addressclip.serve.app import ServerThread, ServiceSettings, create_app
from addressclip.serve.loading import load_predictor
from addressclip.serve.priority import lower_thread_priority
from addressclip.testing.toyworld import TrainedWorld

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux-only")


def thread_nice(tid: int) -> int:
    """The nice value of one thread of this process, from /proc (field 19 of its stat line)."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def thread_nices() -> dict[int, int]:
    """tid -> nice value of every live thread of this process (a thread may end while it is read)."""
    nices = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            nices[int(task.name)] = thread_nice(int(task.name))
        except FileNotFoundError:
            continue
    return nices


def niced_threads(nice: int) -> set[int]:
    return {tid for tid, value in thread_nices().items() if value == nice}


def test_only_the_calling_thread_is_lowered():
    before = thread_nice(threading.get_native_id())
    seen: dict[str, int] = {}

    def worker() -> None:
        lower_thread_priority(before + 3)
        lower_thread_priority(before + 1)  # never raised back: the first, lower priority stays
        seen["tid"] = threading.get_native_id()
        seen["nice"] = thread_nice(seen["tid"])

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["nice"] == before + 3
    assert thread_nice(threading.get_native_id()) == before


def test_decode_parse_and_model_threads_are_niced_and_the_loop_is_not(trained_world: TrainedWorld):
    base = thread_nice(threading.get_native_id())
    nice = min(19, base + 7)
    app = create_app(load_predictor(trained_world.checkpoint), ServiceSettings(bulk_nice=nice))
    photo = next(iter(trained_world.train_images.values()))[0].read_bytes()
    assert not niced_threads(nice)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        body = {"image": base64.b64encode(photo).decode()}
        assert client.post("/v1/predict", json=body).status_code == 200
        assert (
            client.post("/v1/predict", content=photo, headers={"content-type": "image/jpeg"}).status_code
            == 200
        )
        assert client.get("/healthz").status_code == 200
        niced = niced_threads(nice)
        loop_thread = server._thread.native_id
        assert loop_thread is not None and thread_nice(loop_thread) == base
    # the model thread and the pool threads that decoded and parsed: at least two, never the loop's
    assert len(niced) >= 2 and loop_thread not in niced
    assert thread_nice(threading.get_native_id()) == base


def test_bulk_nice_zero_leaves_every_thread_alone(trained_world: TrainedWorld):
    def lowered() -> set[int]:  # threads below this one's priority (other tests' servers may leave some)
        base = thread_nice(threading.get_native_id())
        return {tid for tid, value in thread_nices().items() if value > base}

    before = lowered()
    app = create_app(load_predictor(trained_world.checkpoint), ServiceSettings(bulk_nice=0))
    photo = next(iter(trained_world.train_images.values()))[0].read_bytes()
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        body = {"image": base64.b64encode(photo).decode()}
        assert client.post("/v1/predict", json=body).status_code == 200
        assert lowered() <= before


@pytest.mark.parametrize("value", ["-1", "20"])
def test_serve_refuses_a_bulk_nice_outside_0_to_19(trained_world: TrainedWorld, capsys, value: str):
    assert (
        main(["serve", "--bundle", str(trained_world.checkpoint), "--bulk-nice", value, "--port", "0"]) == 2
    )
    captured = capsys.readouterr()
    assert "serving" not in captured.out
    assert (
        len(captured.err.strip().splitlines()) == 1
        and "--bulk-nice" in captured.err
        and value in captured.err
    )
