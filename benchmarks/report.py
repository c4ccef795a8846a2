"""Shared output of the benchmarks: markdown tables under benchmarks/results/."""

import os


def write_markdown(lines, path):
    """Joins ``lines`` into a markdown document, prints it and writes it to ``path``."""
    table = "\n".join(lines) + "\n"
    print(table)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(table)
    return table
