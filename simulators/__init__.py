"""Loopback imitations of the servers the portal talks to but that cannot run here (Jenkins, GitLab).

`make run` serves them as the demo's labelled "simulated" Jenkins and GitLab; the tests drive them too. They are
built from ../shared/notes/protocols.md and checked against the real payloads in ../shared/fixtures.
"""
