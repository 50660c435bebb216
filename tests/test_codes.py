"""Every code the compiled core and Python share is declared once (hyperplane/_core/_codes.pxd):
the public enums take their values from it by name, and nothing may drift from it.

Each public enum must hold exactly the members of its compiled family (prefix stripped), with
the same numbers, so that a code added to the ``.pxd`` without its Python name, or a Python
member given a number of its own, fails here. And what a user prints is a name, not a number.
"""

from __future__ import annotations

import enum

import numpy as np
import pytest
from scapy.all import IP, TCP

import hyperplane as hp
from hyperplane._core import _codes, _walk
from hyperplane.dataplane.compiled_vpc import EniKind, Target
from hyperplane.dataplane.walk import COLUMNS, Origin
from hyperplane.tables import conntrack
from hyperplane.tables.nat import STATE_NAMES, Direction, NatStatus, Timeouts
from hyperplane.model.values import IMPLICIT_DENY_RULE_NUMBER
from hyperplane.tables.policy import IMPLICIT_DENY_RULE

FAMILIES = [
    (hp.Reason, _codes.Reason, "R_"),
    (Origin, _codes.Origin, "O_"),
    (Target, _codes.Target, "T_"),
    (EniKind, _codes.EniKind, "ENI_"),
    (Direction, _codes.Direction, "DIR_"),
    (NatStatus, _codes.NatStatus, "S_"),
]


@pytest.mark.parametrize("public, compiled, prefix", FAMILIES, ids=lambda x: getattr(x, "__name__", x))
def test_each_public_enum_has_exactly_the_compiled_codes(public, compiled, prefix):
    assert {m.name: int(m) for m in public} == {c.name.removeprefix(prefix): int(c) for c in compiled}
    assert all(c.name.startswith(prefix) for c in compiled)
    # and in the declaration's order (the README and docs list reasons in it)
    assert [m.name for m in public] == [c.name.removeprefix(prefix) for c in compiled]


def test_public_codes_are_plain_ints_underneath():
    # arrays of codes (result.reason, nat status columns) compare with the members
    assert type(hp.Reason.DELIVERED.value) is int and hp.Reason(44) is hp.Reason.NAT_NO_CONNECTION
    assert np.array([1, 18], np.uint8)[1] == NatStatus.UNSOLICITED
    assert NatStatus.TRANSLATED.passed and NatStatus.CLOSED.passed and not NatStatus.NO_CONNECTION.passed


def test_connection_state_names_and_timeouts_follow_the_compiled_states():
    assert len(_codes.ConnState) == _codes.N_STATES == len(STATE_NAMES) == len(Timeouts().by_state())
    assert STATE_NAMES[_codes.ConnState.ST_TCP_FIN_OUT] == "tcp-fin-out"
    t = Timeouts(tcp_established=1.0, tcp_transitory=2.0, udp=3.0, udp_replied=4.0, icmp=5.0).by_state()
    assert t[_codes.ConnState.ST_TCP_ESTABLISHED] == 1.0 and t[_codes.ConnState.ST_TCP_CLOSED] == 2.0
    assert t[_codes.ConnState.ST_UDP_REPLIED] == 4.0 and t[_codes.ConnState.ST_DEAD] == 0.0


def test_a_connection_reported_established_is_in_the_established_state():
    eni = hp.ConnectionTable.hyperplane_eni(["10.0.10.50"])
    syn = np.zeros(1, hp.PACKET)
    syn[0] = (0.0, 0xA9FE0001, 0x0A00140A, 40000, 5432, 40, 6, 0x02)
    out = eni.process(syn, hp.Direction.OUT)
    back = syn.copy()
    back[0] = (1.0, 0x0A00140A, int(out.packets["src_ip"][0]), 5432, int(out.packets["src_port"][0]), 40, 6, 0x12)
    eni.process(back, hp.Direction.IN)
    assert STATE_NAMES[eni.connections()["state"][0]] == "tcp-established"


def test_stage_names_and_stop_codes_come_from_the_compiled_families():
    # STAGES is indexed by stage code ("" for a code no stage has)
    assert all(_walk.STAGES[int(s)] == s.name.removeprefix("H_").lower() for s in _codes.Stage)
    assert tuple(s for s in _walk.STAGES if s) == tuple(s.name.removeprefix("H_").lower() for s in _codes.Stage)
    assert tuple(COLUMNS) == tuple(s for s in _walk.STAGES if s)
    assert [int(s) for s in _codes.Stop] == [0, 1, 2, 3, 4]  # STOP_NONE first: walk() returns it when done


def test_flow_bits_and_the_implicit_deny_rule_are_the_compiled_ones():
    assert (conntrack.SEEN_A, conntrack.SEEN_B, conntrack.FIN_A, conntrack.FIN_B) == (
        _codes.SEEN_A, _codes.SEEN_B, _codes.FIN_A, _codes.FIN_B) == (1, 2, 4, 8)
    assert IMPLICIT_DENY_RULE == _codes.IMPLICIT_DENY_RULE == IMPLICIT_DENY_RULE_NUMBER == 32767  # the NACL "*" rule


@pytest.mark.parametrize("member", [hp.Reason.NACL_OUT_DENY, hp.Disposition.DENIED_OUT, NatStatus.UNSOLICITED,
                                    Direction.IN, Origin.FUNCTION, Target.NAT, EniKind.HYPERPLANE],
                         ids=str)
def test_str_and_format_of_a_code_are_its_name(member):
    assert str(member) == f"{member}" == "%s" % member == member.name
    assert f"{member:>20}" == f"{member.name:>20}"
    assert f"{member:d}" == str(int(member)) and repr(member).endswith(f".{member.name}: {int(member)}>")


def test_printing_a_verdicts_reason_shows_its_name(capsys):
    net = hp.Network.example()
    r = net.function("report").send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S"))
    print(r.reason, r.disposition)
    assert capsys.readouterr().out == "NO_PUBLIC_IP DENIED_OUT\n"


def test_every_public_code_enum_shares_the_code_base():
    for public, _, _ in FAMILIES:
        assert issubclass(public, hp.codes.Code) and issubclass(public, enum.IntEnum)
    assert issubclass(hp.Disposition, hp.codes.Code)


def test_the_packet_fields_codes_of_the_compiled_core_are_the_records_ones():
    # _types.pxd's enum is C-only (no Python object to compare), so its text is read: a protocol
    # number or TCP flag changed on one side only would make the walker and Python disagree
    import re
    from pathlib import Path

    from hyperplane import records

    pxd = (Path(_codes.__file__).parent / "_types.pxd").read_text()
    declared = {name: int(value, 0) for name, value in re.findall(r"^\s+([A-Z_]+) = (0x[0-9A-Fa-f]+|\d+)$", pxd, re.M)}
    python = {"P_ICMP": records.ICMP, "P_TCP": records.TCP, "P_UDP": records.UDP, "F_FIN": records.FIN,
              "F_SYN": records.SYN, "F_RST": records.RST, "F_ACK": records.ACK,
              "ICMP_ECHO_REPLY": records.ICMP_ECHO_REPLY, "ICMP_ECHO_REQUEST": records.ICMP_ECHO_REQUEST}
    assert {name: declared.get(name) for name in python} == python
