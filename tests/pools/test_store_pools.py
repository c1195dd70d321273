"""The `Store` contract for pools: one pool a scope on a host, with a lease.

Runs against every implementation through the `store` fixture (see conftest).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from taskcron.model import Scope
from taskcron.store import PoolLease, Store
from tests.store.conftest import HOST, StoreFactory, at
from tests.store.test_contract import EVERYTHING, dead_pid

OTHER_HOST = "otherhost"


def pool(
    scope: Scope = EVERYTHING,
    *,
    host: str = HOST,
    pid: int | None = None,
    expires_at: datetime | None = None,
) -> PoolLease:
    """A pool of this process (or `pid` on `host`) whose lease runs to `expires_at`."""
    return PoolLease(
        host=host,
        pid=os.getpid() if pid is None else pid,
        scope=scope,
        expires_at=at(600) if expires_at is None else expires_at,
    )


def registered(store: Store, new: PoolLease, now: datetime) -> PoolLease:
    """Register `new`, which must be free to register; return it with its id."""
    pool_id = store.register_pool(new, now=now)
    assert pool_id is not None
    return PoolLease(
        host=new.host, pid=new.pid, scope=new.scope, expires_at=new.expires_at, id=pool_id
    )


def test_a_pool_registers_and_then_holds_its_scope(store: Store) -> None:
    first = registered(store, pool(Scope(modules=("mail",))), at(0))

    second = pool(Scope(modules=("mail.eu",)), pid=1)
    assert store.register_pool(second, now=at(1)) is None
    assert store.serving_pool(second, now=at(1)) == first


def test_serving_pool_is_none_while_no_pool_holds_the_scope(store: Store) -> None:
    registered(store, pool(Scope(modules=("mail",))), at(0))

    assert store.serving_pool(pool(Scope(modules=("billing",))), now=at(1)) is None
    assert store.serving_pool(pool(Scope(excepts=("mail",))), now=at(1)) is None


@pytest.mark.parametrize(
    ("held", "wanted"),
    [
        (Scope(), Scope(modules=("a",))),
        (Scope(modules=("a",)), Scope(modules=("a.x",))),
        (Scope(modules=("a",), excepts=("a.x",)), Scope(modules=("a.x-y",))),
        (Scope(excepts=("a",)), Scope(modules=("b", "a"))),
        (Scope(excepts=("a",)), Scope(excepts=("b",))),
    ],
    ids=repr,
)
def test_a_pool_whose_scope_overlaps_a_live_pools_on_its_host_is_refused(
    store: Store, held: Scope, wanted: Scope
) -> None:
    holder = registered(store, pool(held), at(0))

    assert store.register_pool(pool(wanted), now=at(1)) is None
    assert store.serving_pool(pool(wanted), now=at(1)) == holder


@pytest.mark.parametrize(
    ("held", "wanted"),
    [
        (Scope(modules=("a",)), Scope(modules=("b",))),
        (Scope(modules=("a",)), Scope(modules=("a-x", "a0"))),
        (Scope(modules=("a",), excepts=("a.x",)), Scope(modules=("a.x",))),
        (Scope(excepts=("a",)), Scope(modules=("a.x",))),
    ],
    ids=repr,
)
def test_pools_with_disjoint_scopes_share_a_host(store: Store, held: Scope, wanted: Scope) -> None:
    registered(store, pool(held), at(0))

    assert store.register_pool(pool(wanted), now=at(1)) is not None
    assert store.serving_pool(pool(held), now=at(2)) is not None


def test_pools_on_different_hosts_never_conflict(
    store: Store, store_factory: StoreFactory, tmp_path: Path
) -> None:
    here = registered(store, pool(), at(0))
    elsewhere = store_factory(tmp_path, host=OTHER_HOST)
    try:
        there = registered(elsewhere, pool(host=OTHER_HOST), at(1))

        assert elsewhere.serving_pool(pool(host=OTHER_HOST, pid=1), now=at(2)) == there
        assert store.serving_pool(pool(pid=1), now=at(2)) == here
    finally:
        elsewhere.close()


def test_a_pool_on_another_host_is_not_dropped_for_a_pid_that_is_gone_here(
    store: Store, store_factory: StoreFactory, tmp_path: Path
) -> None:
    elsewhere = store_factory(tmp_path, host=OTHER_HOST)
    try:
        there = registered(elsewhere, pool(host=OTHER_HOST, pid=dead_pid()), at(0))

        assert store.register_pool(pool(host=OTHER_HOST), now=at(1)) is None
        assert store.serving_pool(pool(host=OTHER_HOST), now=at(1)) == there
        # On its own host the pid is known to be gone: the pool is dropped.
        assert elsewhere.register_pool(pool(host=OTHER_HOST), now=at(2)) is not None
    finally:
        elsewhere.close()


def test_a_pool_whose_lease_expired_is_replaced(store: Store) -> None:
    registered(store, pool(expires_at=at(60)), at(0))
    assert store.register_pool(pool(pid=1), now=at(59)) is None

    assert store.serving_pool(pool(pid=1), now=at(60)) is None
    successor = registered(store, pool(pid=1, expires_at=at(120)), at(60))
    assert store.serving_pool(pool(), now=at(61)) == successor


def test_a_pool_whose_pid_is_gone_on_this_host_is_replaced_before_its_lease_expires(
    store: Store,
) -> None:
    registered(store, pool(pid=dead_pid(), expires_at=at(3600)), at(0))

    assert store.serving_pool(pool(), now=at(1)) is None
    successor = registered(store, pool(), at(1))
    assert store.serving_pool(pool(pid=1), now=at(2)) == successor


def test_serving_pool_does_not_name_the_pool_asking(store: Store) -> None:
    mine = registered(store, pool(), at(0))

    assert store.serving_pool(mine, now=at(1)) is None


def test_a_released_pool_frees_its_scope(store: Store) -> None:
    first = registered(store, pool(), at(0))
    assert first.id is not None

    store.release_pool(first.id)

    assert store.serving_pool(pool(pid=1), now=at(1)) is None
    second = registered(store, pool(pid=1), at(1))
    assert second.id != first.id
    store.release_pool(first.id)  # releasing twice is harmless
    assert store.serving_pool(pool(), now=at(2)) == second


def test_renew_pool_extends_its_lease(store: Store) -> None:
    first = registered(store, pool(expires_at=at(60)), at(0))
    assert first.id is not None

    assert store.renew_pool(first.id, expires_at=at(600)) is True

    assert store.register_pool(pool(pid=1), now=at(300)) is None
    renewed = store.serving_pool(pool(pid=1), now=at(300))
    assert renewed is not None and renewed.expires_at == at(600)
    assert store.register_pool(pool(pid=1, expires_at=at(900)), now=at(600)) is not None


def test_renew_pool_is_false_once_the_pool_is_gone(store: Store) -> None:
    first = registered(store, pool(expires_at=at(60)), at(0))
    assert first.id is not None
    registered(store, pool(pid=1), at(60))  # drops the expired one

    assert store.renew_pool(first.id, expires_at=at(600)) is False
    store.release_pool(first.id)
    assert store.renew_pool(first.id, expires_at=at(600)) is False
