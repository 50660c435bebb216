"""Scenarios for the lifecycle transition table (hyperplane.lambda_service.states).

Every legal (State, event) pair of ``STATE_TRANSITIONS`` is reached here through the public
API only (create, invoke, update, delete, wait), one short scenario each, and a spy on the
table's ``apply`` checks that the scenario really went through that pair. Then the table is
asked for what it refuses: an event its state does not allow raises ``IllegalTransition``,
naming the function, its states and the event, and changes nothing.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from hyperplane.lambda_service import (
    ACTIVE, CREATING, ENI_AVAILABLE, ENI_DELETED, ENI_DELETING, ENI_LIMIT_EXCEEDED, ENI_ORPHANED, ENI_PENDING,
    FAILED,
    FUNCTION_INACTIVE, IDLE, IN_PROGRESS, INACTIVE, INSUFFICIENT_ROLE_PERMISSIONS, INVALID_SUBNET, PENDING,
    RESTORING, SUCCESSFUL, IllegalTransition, LambdaError, LambdaService, LambdaSettings, ResourceConflict,
    lifecycle, service as service_module, states,
)
from hyperplane.lambda_service.states import ENI_TRANSITIONS, STATE_TRANSITIONS, EniEvent, FunctionEvent as E
from hyperplane.loaders import parse_topology
from hyperplane.tables.nat import Direction
from hyperplane.records import PACKET, UDP, ip

DAY = 86400.0
VPC_ROLE = {"name": "vpc-role", "managed_policies": ["AWSLambdaVPCAccessExecutionRole"]}
BASIC_ROLE = {"name": "basic-role", "managed_policies": ["AWSLambdaBasicExecutionRole"]}
A = {"subnet_ids": ["subnet-a"], "security_group_ids": ["sg-1"]}
B = {"subnet_ids": ["subnet-b"], "security_group_ids": ["sg-1"]}
AB = {"subnet_ids": ["subnet-a", "subnet-b"], "security_group_ids": ["sg-1"]}
NOWHERE = {"subnet_ids": ["subnet-nope"], "security_group_ids": ["sg-1"]}


def service(role: dict = VPC_ROLE, vpc_config: dict | None = A, **settings: Any) -> LambdaService:
    """One function ``f`` in a VPC of two subnets, created at t=0 (Pending for 60 s)."""
    fn: dict[str, Any] = {"name": "f", "role": dict(role)}
    if vpc_config is not None:
        fn["vpc_config"] = vpc_config
    doc = {
        "vpcs": [{"id": "vpc-1", "cidr": "10.0.0.0/16"}],
        "subnets": [{"id": sid, "vpc_id": "vpc-1", "cidr": cidr, "availability_zone": "eu-west-1a"}
                    for sid, cidr in (("subnet-a", "10.0.0.0/24"), ("subnet-b", "10.0.1.0/24"))],
        "security_groups": [{"id": "sg-1", "vpc_id": "vpc-1"}],
        "functions": [fn],
    }
    return LambdaService(parse_topology(doc, file="states.yaml"), LambdaSettings(**settings))


def active() -> LambdaService:
    s = service()
    s.advance(60.0)
    assert s.function("f").state == ACTIVE
    return s


def inactive() -> LambdaService:
    s = active()
    s.advance(60.0 + 14 * DAY)
    assert s.function("f").state == INACTIVE
    return s


def failed() -> LambdaService:
    s = service(vpc_config=AB, max_enis_per_vpc=1)  # two pairs, room for one ENI
    assert (s.function("f").state, s.function("f").state_reason_code) == (FAILED, ENI_LIMIT_EXCEEDED)
    return s


# --------------------------------------------------------------------------------------------
# one scenario per legal (State, event); each returns the function after the event


def pending_enis_ready() -> Any:
    # AWS: "After Lambda finishes creating the function, the state changes to Active"
    s = service()
    s.advance(60.0)
    return s.function("f"), (ACTIVE, None, SUCCESSFUL)


def pending_creation_failed() -> Any:
    s = service(role=BASIC_ROLE)  # no ec2:CreateNetworkInterface
    return s.function("f"), (FAILED, INSUFFICIENT_ROLE_PERMISSIONS, FAILED)


def pending_deleted() -> Any:
    s = service()
    fs = s.function("f")
    s.delete_function("f")
    return fs, (PENDING, CREATING, IN_PROGRESS)


def active_idle_reclaim() -> Any:
    s = active()
    s.advance(60.0 + 14 * DAY)
    return s.function("f"), (INACTIVE, IDLE, SUCCESSFUL)


def active_update_started() -> Any:
    s = active()
    return s.update_function_configuration("f", B, now=100.0), (ACTIVE, None, IN_PROGRESS)


def active_update_succeeded() -> Any:
    s = active()
    s.update_function_configuration("f", B, now=100.0)
    s.advance(160.0)
    return s.function("f"), (ACTIVE, None, SUCCESSFUL)


def active_update_failed() -> Any:
    s = active()
    return s.update_function_configuration("f", NOWHERE, now=100.0), (ACTIVE, None, FAILED)


def active_deleted() -> Any:
    s = active()
    fs = s.function("f")
    s.delete_function("f", now=100.0)
    return fs, (ACTIVE, None, SUCCESSFUL)


def inactive_invoked() -> Any:
    # AWS: "If you invoke a function that is inactive, the invocation fails and Lambda sets the
    # function to pending state until the function resources are recreated."
    s = inactive()
    refused = s.invoke("f")
    assert not refused.accepted and refused.reason_code == FUNCTION_INACTIVE
    return s.function("f"), (PENDING, RESTORING, SUCCESSFUL)


def inactive_restore_failed() -> Any:
    # AWS: "If Lambda fails to recreate the resources, the function returns to the Inactive state."
    s = inactive()
    s.delete_role("vpc-role")
    s.invoke("f")
    return s.function("f"), (INACTIVE, INSUFFICIENT_ROLE_PERMISSIONS, SUCCESSFUL)


def inactive_update_started() -> Any:
    s = inactive()  # an Inactive function's update ends at once: started, then succeeded
    fs = s.update_function_configuration("f", B)
    assert fs.vpc_config is not None and fs.vpc_config.subnet_ids == ("subnet-b",)
    return fs, (INACTIVE, IDLE, SUCCESSFUL)


inactive_update_succeeded = inactive_update_started


def inactive_update_failed() -> Any:
    s = inactive()
    return s.update_function_configuration("f", NOWHERE), (INACTIVE, IDLE, FAILED)


def inactive_deleted() -> Any:
    s = inactive()
    fs = s.function("f")
    s.delete_function("f")
    return fs, (INACTIVE, IDLE, SUCCESSFUL)


def failed_creation_retried() -> Any:
    # AWS: "When function creation fails, Lambda sets the function state to failed, and you must
    # delete and recreate the function." This emulator lets UpdateFunctionConfiguration of a
    # Failed function try the creation again (tests/test_lambda_lifecycle.py relies on it).
    s = failed()
    return s.update_function_configuration("f", A), (PENDING, CREATING, IN_PROGRESS)


def failed_deleted() -> Any:
    s = failed()
    fs = s.function("f")
    s.delete_function("f")
    return fs, (FAILED, ENI_LIMIT_EXCEEDED, FAILED)


SCENARIOS: dict[tuple[str, E], Callable[[], Any]] = {
    (PENDING, E.ENIS_READY): pending_enis_ready,
    (PENDING, E.CREATION_FAILED): pending_creation_failed,
    (PENDING, E.DELETED): pending_deleted,
    (ACTIVE, E.IDLE_RECLAIMED): active_idle_reclaim,
    (ACTIVE, E.UPDATE_STARTED): active_update_started,
    (ACTIVE, E.UPDATE_SUCCEEDED): active_update_succeeded,
    (ACTIVE, E.UPDATE_FAILED): active_update_failed,
    (ACTIVE, E.DELETED): active_deleted,
    (INACTIVE, E.RESTORE_STARTED): inactive_invoked,
    (INACTIVE, E.RESTORE_FAILED): inactive_restore_failed,
    (INACTIVE, E.UPDATE_STARTED): inactive_update_started,
    (INACTIVE, E.UPDATE_SUCCEEDED): inactive_update_succeeded,
    (INACTIVE, E.UPDATE_FAILED): inactive_update_failed,
    (INACTIVE, E.DELETED): inactive_deleted,
    (FAILED, E.CREATION_RETRIED): failed_creation_retried,
    (FAILED, E.DELETED): failed_deleted,
}


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, E]]:
    """Every (function, State before, event) the service applies, through the modules that apply."""
    seen: list[tuple[str, str, E]] = []
    real = states.apply

    def spy(fs: Any, event: E, **kw: Any) -> None:
        seen.append((fs.name, fs.state, event))
        real(fs, event, **kw)

    for module in (lifecycle, service_module):
        monkeypatch.setattr(module, "apply", spy)
    return seen


def test_every_transition_of_the_table_has_a_scenario() -> None:
    table = {(state, event) for state, row in STATE_TRANSITIONS.items() for event in row}
    assert table == set(SCENARIOS)


@pytest.mark.parametrize("pair", list(SCENARIOS), ids=lambda p: f"{p[0]}-{p[1].name}")
def test_each_legal_transition_is_reached_through_the_api(pair: tuple[str, E], applied: list) -> None:
    state, event = pair
    fs, (expected_state, expected_code, expected_update) = SCENARIOS[pair]()
    assert ("f", state, event) in applied
    assert STATE_TRANSITIONS[state][event] == expected_state
    assert (fs.state, fs.state_reason_code, fs.last_update_status) == (expected_state, expected_code, expected_update)
    assert fs.deleted == (event is E.DELETED)


def test_a_failed_function_whose_retry_fails_again_is_failed_with_the_new_reason() -> None:
    s = service(role=BASIC_ROLE)
    assert s.function("f").state_reason_code == INSUFFICIENT_ROLE_PERMISSIONS
    fs = s.update_function_configuration("f", NOWHERE)
    assert (fs.state, fs.state_reason_code, fs.last_update_status) == (FAILED, INVALID_SUBNET, FAILED)
    assert fs.last_update_status_reason_code == INVALID_SUBNET


def test_enis_ready_applied_to_an_active_function_is_refused_and_changes_nothing() -> None:
    fs = active().function("f")
    before = fs.configuration()
    with pytest.raises(IllegalTransition) as caught:
        states.apply(fs, E.ENIS_READY)
    assert isinstance(caught.value, LambdaError)
    assert (caught.value.subject, caught.value.event) == ("function f", "ENIs ready")
    assert caught.value.state == "Active (LastUpdateStatus Successful)"
    assert str(caught.value) == ("function f is Active (LastUpdateStatus Successful): 'ENIs ready' is not "
                                 "allowed; allowed there: idle reclaim, update started, deleted")
    assert fs.configuration() == before


def test_idle_reclaim_in_the_middle_of_an_update_is_refused_by_the_table_and_waits_in_the_service() -> None:
    s = active()
    fs = s.update_function_configuration("f", B, now=100.0)
    with pytest.raises(IllegalTransition, match="InProgress"):
        states.apply(fs, E.IDLE_RECLAIMED, reason="idle")
    assert (fs.state, fs.last_update_status) == (ACTIVE, IN_PROGRESS)


def test_a_deleted_function_takes_no_event() -> None:
    s = service()
    fs = s.function("f")
    s.delete_function("f")
    assert states.allowed(fs) == ()
    with pytest.raises(IllegalTransition, match="deleted.*no event is allowed"):
        states.apply(fs, E.ENIS_READY)
    s.advance(60.0)  # the ENIs it waited for become ready: nothing happens to it
    assert fs.state == PENDING


def test_an_update_while_pending_is_aws_resource_conflict_not_a_table_error() -> None:
    s = service()
    with pytest.raises(ResourceConflict):
        s.update_function_configuration("f", B)
    assert s.function("f").last_update_status == IN_PROGRESS


def test_a_failure_event_needs_its_failure() -> None:
    fs = service().function("f")
    with pytest.raises(TypeError):
        states.apply(fs, E.CREATION_FAILED)
    assert fs.state == PENDING
# --------------------------------------------------------------------------------------------
# Hyperplane ENI statuses


def udp_rows(source: str, times: list[float]) -> np.ndarray:
    rows = np.zeros(len(times), dtype=PACKET)
    rows["time"] = times
    rows["src_ip"] = ip(source)
    rows["dst_ip"] = ip("10.0.1.10")
    rows["src_port"] = 1024 + np.arange(len(times))
    rows["dst_port"] = 53
    rows["length"] = 60
    rows["proto"] = UDP
    return rows


def test_eni_statuses_follow_the_table_from_pending_to_deleted() -> None:
    s = service()
    eni = s.function("f").hyperplane_enis[0]
    assert eni.status == ENI_PENDING
    s.advance(60.0)
    assert eni.status == ENI_AVAILABLE
    s.update_function_configuration("f", None, now=100.0)  # detached: the pool has no user
    assert eni.status == ENI_DELETING
    # AWS: Lambda deletes an unused Hyperplane ENI "within 20 minutes"
    s.advance(100.0 + 20 * 60)
    assert eni.status == ENI_DELETED


def test_an_eni_whose_user_comes_back_is_available_again_and_an_orphan_is_deleted_by_hand() -> None:
    s = active()
    eni = s.function("f").hyperplane_enis[0]
    s.update_function_configuration("f", None, now=100.0)
    assert eni.status == ENI_DELETING
    s.update_function_configuration("f", A, now=200.0)  # the same pair again, before the deletion
    assert eni.status == ENI_AVAILABLE
    s.update_function_configuration("f", None, now=300.0)
    s.delete_role("vpc-role", now=400.0)
    s.advance(300.0 + 20 * 60)
    assert eni.status == ENI_ORPHANED
    s.delete_network_interface(eni.id)
    assert eni.status == ENI_DELETED


def test_an_eni_event_its_status_does_not_allow_is_refused_and_changes_nothing() -> None:
    eni = active().function("f").hyperplane_enis[0]
    with pytest.raises(IllegalTransition) as caught:
        states.apply_eni(eni, EniEvent.REUSED)
    assert str(caught.value) == (f"Hyperplane ENI {eni.id} is available: 'a user came back' is not allowed; "
                                 "allowed there: last user left, deleted, deletion failed")
    assert eni.status == ENI_AVAILABLE
    assert ENI_TRANSITIONS[ENI_DELETED] == {}


def test_an_overflow_eni_made_by_a_packet_ahead_of_the_clock_never_goes_back_to_pending() -> None:
    # A capture's packets run ahead of the service clock; the overflow ENI a later packet makes
    # is ready at that packet's time. Detaching the function at an earlier clock time used to
    # recompute it as "pending" (and leave it so until its deletion) instead of "deleting".
    s = service(max_connections_per_eni=1)
    s.advance(60.0)
    invocation = s.invoke("f", now=70.0)
    result = invocation.pool.table.process(udp_rows(invocation.environment_ip, [70.0, 90.0]), Direction.OUT)
    first, overflow = invocation.pool.enis
    assert overflow.overflow and result.packets["src_ip"][1] == overflow.private_ip_int
    assert (first.status, overflow.status, s.now) == (ENI_AVAILABLE, ENI_AVAILABLE, 70.0)
    s.update_function_configuration("f", None, now=80.0)  # the pool has no user left
    assert (first.status, overflow.status) == (ENI_DELETING, ENI_DELETING)
    s.advance(80.0 + 20 * 60)
    assert (first.status, overflow.status) == (ENI_DELETED, ENI_DELETED)


def test_a_restore_does_not_turn_a_failed_last_update_into_a_successful_one() -> None:
    # AWS (API_FunctionConfiguration, LastUpdateStatus): "The status of the last update that was
    # performed on the function." Re-creating an Inactive function's ENIs is no update; this
    # emulator used to report the failed update as Successful once the restore finished.
    s = inactive()
    fs = s.update_function_configuration("f", NOWHERE)
    assert (fs.last_update_status, fs.last_update_status_reason_code) == (FAILED, INVALID_SUBNET)
    s.invoke("f")  # starts the restore, with the config it had
    s.advance(s.now + 60.0)
    assert fs.state == ACTIVE and fs.vpc_config is not None and fs.vpc_config.subnet_ids == ("subnet-a",)
    assert (fs.last_update_status, fs.last_update_status_reason_code) == (FAILED, INVALID_SUBNET)
    assert "subnet-nope" in (fs.last_update_status_reason or "")
