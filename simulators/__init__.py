"""Loopback imitations of the servers the portal talks to but that cannot run here (Jenkins, GitLab).

`make run` serves them as the demo's labelled "simulated" Jenkins and GitLab; the tests drive them too. They are
built from ../shared/notes/protocols.md and checked against the real payloads in ../shared/fixtures.
"""

import signal
import threading


def serve_until_stopped(simulator, *, stdout, message: str) -> None:
    """Start the imitation, say so on `stdout`, and serve until SIGTERM or Ctrl-C (the demo's commands)."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    simulator.start()
    stdout.write(message)
    stdout.flush()
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
