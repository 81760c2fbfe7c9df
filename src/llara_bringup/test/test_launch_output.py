"""The launcher's output lines stay whole when node reader threads print at the same time."""
import io
import sys
import threading

from llara_bringup.launch import say


class SlowStream(io.StringIO):
    """A stdout that yields the GIL between writes, as a pipe does, so interleaving shows."""

    def write(self, text):
        for part in (text[:len(text) // 2], text[len(text) // 2:]):
            super().write(part)
            threading.Event().wait(0.0001)
        return len(text)


def test_lines_from_many_threads_are_never_merged(monkeypatch):
    stream = SlowStream()
    monkeypatch.setattr(sys, 'stdout', stream)
    lines = {f'[node{t}] line {k} ' + 'x' * 40 for t in range(6) for k in range(40)}

    def emit(prefix):
        for line in sorted(lines):
            if line.startswith(prefix):
                say(line)

    threads = [threading.Thread(target=emit, args=(f'[node{t}]',)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = stream.getvalue().splitlines()
    # Every line arrived whole, once, on its own (print() could glue two threads' lines).
    assert sorted(written) == sorted(lines)
