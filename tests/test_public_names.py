"""Every public name of ``hyperplane`` is there, whether it is imported with the package or
when first used: the connection questions and workloads a script that only sends packets never
needs are not imported with the package, nor is scapy until a packet is sent (batches and
replays of captures never need it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hyperplane as hp
from hyperplane.connectivity.diff import diff
from hyperplane.replay import replay
from hyperplane.workload import Workload


def test_every_public_name_is_the_object_its_module_defines():
    for name in hp.__all__:
        assert getattr(hp, name) is not None, name
    assert hp.diff is diff and callable(hp.diff)  # the function, not the module of the same name
    assert hp.replay is replay and callable(hp.replay)
    assert hp.Workload is Workload
    names: dict = {}
    exec("from hyperplane import *", names)
    assert set(hp.__all__) <= set(names) and set(hp.__all__) <= set(dir(hp))


def test_a_script_that_sends_packets_does_not_import_the_connection_questions_or_workloads():
    code = ("import sys, hyperplane as hp; from scapy.layers.inet import IP, TCP; "
            "r = hp.Network.example().function('orders').send(IP(dst='10.0.21.10') / TCP(dport=6379, flags='S')); "
            "assert r.delivered, r; "
            "print(sorted(m for m in sys.modules if m.startswith(('hyperplane.connectivity.', 'hyperplane.workload'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(hp.__file__).parents[1])  # this checkout's package
    assert out.stdout.split() == ["[]"]


def test_an_unknown_name_is_a_clear_attribute_error():
    try:
        hp.Nework  # type: ignore[attr-defined]
    except AttributeError as e:
        assert "'hyperplane' has no attribute 'Nework'" in str(e)
    else:
        raise AssertionError("hp.Nework resolved")


def test_batches_and_replays_do_not_import_scapy():
    code = ("import sys, hyperplane as hp; from hyperplane.records import SYN, packet; "
            "net = hp.Network.example(); "
            "rows = packet(net.function('orders').environment_address(0), '10.0.21.10', 40000, 6379, flags=SYN); "
            "r = net.process(rows, hp.Origin.FUNCTION, net.pool_index('orders')); "
            "assert r.delivered.all(), r.reason; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(hp.__file__).parents[1])
    assert out.stdout.split() == ["[]"]
