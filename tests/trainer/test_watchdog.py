"""The watchdog fires only for a guarded call that outlives its deadline."""

import threading
import time

from trainer import watchdog


def make_watchdog(timeout):
  fired = []
  done = threading.Event()

  def on_expire(what, seconds):
    fired.append((what, seconds))
    done.set()

  return watchdog.Watchdog(timeout, on_expire=on_expire), fired, done


def test_a_call_past_its_deadline_fires_once_with_its_name():
  dog, fired, done = make_watchdog(0.2)
  with dog.guard("a training loop"):
    assert done.wait(timeout=5)
  time.sleep(0.3)
  dog.close()
  assert fired == [("a training loop", 0.2)]


def test_calls_within_their_deadline_never_fire():
  dog, fired, _ = make_watchdog(0.3)
  for _ in range(20):
    with dog.guard("a training loop"):
      time.sleep(0.02)
  time.sleep(0.5)  # Longer than the deadline, outside any guard.
  dog.close()
  assert fired == []


def test_a_guard_may_set_its_own_timeout_and_zero_disables():
  dog, fired, done = make_watchdog(0)
  with dog.guard("unwatched"):
    time.sleep(0.2)
  with dog.guard("start-up", 0.1):
    assert done.wait(timeout=5)
  dog.close()
  assert fired == [("start-up", 0.1)]


def test_one_thread_however_many_calls():
  dog, _, _ = make_watchdog(10)
  before = threading.active_count()
  for _ in range(1000):
    with dog.guard("a training loop"):
      pass
  assert threading.active_count() <= before + 1
  dog.close()
