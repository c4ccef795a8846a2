"""Shared output of the benchmarks: markdown tables under benchmarks/results/, and
the resumable CSV run logs they are summarised from."""

import csv
import fcntl
import os


def write_markdown(lines, path):
    """Joins ``lines`` into a markdown document, prints it and writes it to ``path``."""
    table = "\n".join(lines) + "\n"
    print(table)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(table)
    return table


def read_rows(path):
    """Rows of a CSV run log as dicts (none if the file does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def append_row(path, row, fields):
    """Appends ``row``'s ``fields`` (in that order; missing ones empty) to a
    CSV run log under an exclusive lock, with the header if the file is new:
    several processes may append to one log."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a", newline="", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if f.tell() == 0:
                writer.writeheader()
            writer.writerow(row)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
