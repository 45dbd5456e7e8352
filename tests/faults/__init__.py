"""Fault and multi-process suites (issue 6): real ``alignbot`` processes, killed, starved and raced."""
