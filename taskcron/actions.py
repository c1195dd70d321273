"""The actions people take on a task (run now, pause, resume, cancel, retry, remove): one
row each, which the API, the CLI and the dashboard all read, and `take`, which takes
one; adding an action is a row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from taskcron.inputs import check_owner
from taskcron.lifecycle import Event
from taskcron.model import State, Task

if TYPE_CHECKING:
    from taskcron.home import Home


class Action(NamedTuple):
    """One task action: its names, the states it acts in and where it takes the task."""

    name: str  #: The CLI's command and the dashboard's URL: `run-now`.
    words: str  #: As records and refusals say it: `run now`.
    done: str  #: What the CLI says after `task N`: `due now`.
    help: str  #: The CLI command's help.
    allowed: tuple[State, ...]  #: The states it acts in.
    to: State | None  #: The state it leaves the task in; None: the task is deleted.
    event: str  #: The record it writes (an `Event` name).
    reset: bool = False  #: Attempts start again.
    due: bool = False  #: The task is due now.
    sooner: bool = False  #: ...unless it is due sooner already.


_NOT_RUNNING = (State.QUEUED, State.PAUSED, State.FAILED, State.CANCELLED, State.DONE)

#: Every action by name, in the order the dashboard offers them.
ACTIONS = {
    action.name: action
    for action in (
        Action(
            name="run-now",
            words="run now",
            done="due now",
            help="Make a queued task due now, at the back of the line; a due one keeps its place.",
            allowed=(State.QUEUED,),
            to=State.QUEUED,
            event=Event.TASK_RUN_NOW,
            due=True,
            sooner=True,
        ),
        Action(
            name="pause",
            words="pause",
            done="paused",
            help="Hold a queued task until `resume`.",
            allowed=(State.QUEUED,),
            to=State.PAUSED,
            event=Event.TASK_PAUSED,
        ),
        Action(
            name="resume",
            words="resume",
            done="resumed",
            help="Put a paused task back in line.",
            allowed=(State.PAUSED,),
            to=State.QUEUED,
            event=Event.TASK_RESUMED,
        ),
        Action(
            name="cancel",
            words="cancel",
            done="cancelled",
            help="Cancel a queued or paused task.",
            allowed=(State.QUEUED, State.PAUSED),
            to=State.CANCELLED,
            event=Event.TASK_CANCELLED,
        ),
        Action(
            name="retry",
            words="retry",
            done="queued again",
            help="Put a failed or cancelled task back in line, attempts reset.",
            allowed=(State.FAILED, State.CANCELLED),
            to=State.QUEUED,
            event=Event.TASK_RETRIED,
            reset=True,
            due=True,
        ),
        Action(
            name="remove",
            words="remove",
            done="removed",
            help="Delete a task that is not running, with its runs.",
            allowed=_NOT_RUNNING,
            to=None,
            event=Event.TASK_REMOVED,
        ),
    )
}


def allowed_in(state: State) -> tuple[str, ...]:
    """The names of the actions `state` allows, in the dashboard's order."""
    return tuple(a.name for a in ACTIONS.values() if state in a.allowed)


def take(home: Home, action: Action, task_id: int) -> Task:
    """Take `action` on task `task_id`, if its state allows it, and record it."""
    if action.to is None:
        return remove(home, task_id)
    now = home.clock()
    task = home.stored(task_id).transition(
        task_id,
        action=action.words,
        allowed=action.allowed,
        to=action.to,
        now=now,
        reset_attempts=action.reset,
        due_at=now if action.due else None,
        sooner_only=action.sooner,
    )
    home.recorder.emit(action.event, task=task, message=f"{action.words}: now {task.state.value}")
    return task


def remove(home: Home, task_id: int) -> Task:
    """Delete task `task_id` if it is not running, with its runs; return it as it was."""
    task = home.stored(task_id).remove(task_id)
    home.recorder.emit(ACTIONS["remove"].event, task=task, message=f"removed ({task.state.value})")
    return task


def cancel_owned(home: Home, owner: str) -> list[Task]:
    """Cancel every queued or paused task of `owner`; return them."""
    check_owner(owner)
    store = home.existing_store()
    if store is None:
        return []
    cancel = ACTIONS["cancel"]
    cancelled = store.cancel_owned(owner, now=home.clock())
    for task in cancelled:
        home.recorder.emit(cancel.event, task=task, message="cancel: now cancelled", owner=owner)
    return cancelled
