from taskcron import TaskCron
from tests.conftest import FakeClock


def test_brief_example_runs_in_the_order_the_brief_gives(tc: TaskCron, clock: FakeClock) -> None:
    names = {}
    for name, module, priority in [
        ("a1", "a", 0),
        ("a2", "a", 10),
        ("ax", "a.x", 100),
        ("a3", "a", 5),
        ("b1", "b", 0),
        ("b2", "b", 5),
        ("c1", "c", -3),
    ]:
        task = tc.schedule(module, command=["true"], priority=priority, title=name)
        names[task.id] = name
        clock.advance(1)
    order = []
    while (result := tc.tick()).outcome == "ran":
        assert result.task is not None
        order.append(result.task.title)
    assert order == ["a2", "a1", "ax", "a3", "b2", "b1", "c1"]
