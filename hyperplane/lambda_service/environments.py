"""Execution environments: their source addresses, and the one subnet each is bound to.

Each function owns blocks of source addresses inside
``LambdaSettings.execution_environment_network`` (169.254.0.0/16 by default): the *i*-th function
created gets the *i*-th /24 (the topology's functions first, in declaration order; a deleted
function's block is not reused), and its environment *k* (0-253) is ``block + 1 + k``. A function
that needs more environments (a capture of a busy function) gets further /24s as it needs them,
taken from the top of the network downward: environment *k* is host ``1 + k % 254`` of its
``k // 254``-th block. Blocks are never reused, so a late packet to a deleted function's address
finds no one rather than another function.

An environment is bound for its lifetime to ONE subnet of the function's ``VpcConfig``:
``subnet_ids[zlib.crc32(f"{name}:{environment_ip}".encode()) % len(subnet_ids)]`` (dotted
address, subnets in the order the config lists them). SPEC §2 asks for a deterministic,
documented choice; a hash of name and address is stable across runs and needs no table.
"""

from __future__ import annotations

import zlib
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from hyperplane.model import VpcConfig

from hyperplane.lambda_service.errors import InvalidEnvironment, LambdaError
from hyperplane.lambda_service.settings import LambdaSettings


class FunctionState(Protocol):
    """What the blocks need of a function (``function.FunctionState``): its name, creation
    index (its first block) and the blocks it holds."""

    name: str
    index: int
    _blocks: list[int]

__all__ = ["ExecutionEnvironments", "subnet_for", "ENVIRONMENT_BLOCK", "ENVIRONMENTS_PER_FUNCTION"]

ENVIRONMENT_BLOCK = 256  # addresses per block: a /24
ENVIRONMENTS_PER_FUNCTION = 254  # block + 1 .. block + 254
# environment numbers stay below any address as an int (the network cannot overlap 0.0.0.0/8)
MAX_ENVIRONMENT_NUMBER = 1 << 24


def subnet_for(name: str, environment_ip: str, config: VpcConfig) -> str:
    """The subnet of ``config`` that the environment (dotted address) is bound to."""
    subnets = config.subnet_ids
    return subnets[zlib.crc32(f"{name}:{environment_ip}".encode()) % len(subnets)]


def block_network(settings: LambdaSettings, block: int) -> IPv4Network:
    """The /24 of ordinal ``block`` in the execution environment network."""
    base = int(settings.environment_network.network_address) + block * ENVIRONMENT_BLOCK
    return IPv4Network((base, 24))


class ExecutionEnvironments:
    """The blocks of the execution environment network: which function owns which."""

    def __init__(self, settings: LambdaSettings) -> None:
        self.settings = settings
        self._by_block: dict[int, FunctionState] = {}  # environment block -> its function
        self._next_block = 0
        # further environment blocks are taken from the top of the network downward
        self._top_block = settings.environment_network.num_addresses // ENVIRONMENT_BLOCK - 1

    def first_block(self, name: str) -> int:
        """The block a new function gets (raises LambdaError when every block is taken)."""
        if self._next_block > self._top_block:
            network = self.settings.environment_network
            raise LambdaError(f"the execution environment network {network} has room for "
                              f"{network.num_addresses // ENVIRONMENT_BLOCK} blocks of 254 environments, "
                              f"all taken; cannot create {name}")
        self._next_block += 1
        return self._next_block - 1

    def register(self, fs: FunctionState) -> None:
        for block in fs._blocks:
            self._by_block[block] = fs

    def release(self, fs: FunctionState) -> None:
        """A deleted function's blocks: not reused, so a late packet to it finds no one."""
        for block in fs._blocks:
            del self._by_block[block]

    def address(self, fs: FunctionState, k: int) -> str:
        """The source address of ``fs``'s environment ``k`` (giving it a block if needed)."""
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < MAX_ENVIRONMENT_NUMBER:
            raise InvalidEnvironment(f"execution environment number must be an int from 0, not {k!r}")
        ordinal, host = divmod(k, ENVIRONMENTS_PER_FUNCTION)
        while len(fs._blocks) <= ordinal:
            if self._top_block < self._next_block:
                network = self.settings.environment_network
                raise InvalidEnvironment(
                    f"{fs.name}: no room for execution environment {k}: the execution environment network "
                    f"{network} ({network.num_addresses // ENVIRONMENT_BLOCK} blocks of 254) is full; "
                    "a larger LambdaSettings.execution_environment_network makes room")
            fs._blocks.append(self._top_block)
            self._by_block[self._top_block] = fs
            self._top_block -= 1
        base = int(self.settings.environment_network.network_address) + fs._blocks[ordinal] * ENVIRONMENT_BLOCK
        return str(IPv4Address(base + 1 + host))

    def function_of(self, ip: str | int | IPv4Address) -> FunctionState | None:
        """The function whose execution environments use ``ip``, or ``None``."""
        try:
            value = int(IPv4Address(ip))
        except (ValueError, TypeError):
            return None
        network = self.settings.environment_network
        offset = value - int(network.network_address)
        if not 0 <= offset < network.num_addresses:
            return None
        block, host = divmod(offset, ENVIRONMENT_BLOCK)
        fs = self._by_block.get(block)
        if fs is None or not 1 <= host <= ENVIRONMENTS_PER_FUNCTION:
            return None
        return fs

    def resolve(self, fs: FunctionState, environment: str | int | IPv4Address | None) -> str:
        """An environment given as an address (dotted or uint32), a number or ``None`` (= 0),
        as its dotted address; raises InvalidEnvironment if it is not ``fs``'s."""
        if environment is None:
            return self.address(fs, 0)
        if isinstance(environment, int) and not isinstance(environment, bool) \
                and 0 <= environment < MAX_ENVIRONMENT_NUMBER:
            return self.address(fs, environment)  # a number, not an address
        try:
            ip = IPv4Address(environment)
        except (ValueError, TypeError):
            raise InvalidEnvironment(f"{environment!r} is not an IPv4 address of an execution environment") from None
        if self.function_of(ip) is not fs:
            first = block_network(self.settings, fs.index)
            raise InvalidEnvironment(
                f"{ip} is not an execution environment of {fs.name} (its first ones are "
                f"{first[1]}-{first[ENVIRONMENTS_PER_FUNCTION]})")
        return str(ip)
