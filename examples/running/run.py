"""Enqueue the long-running examples and print their results.

steep worker app.jobs &      # in this directory
python run.py
steep jobs show <id>         # while one runs: its progress (and cursor)
"""

from app.jobs import import_rows, sum_of_squares

rows = import_rows.enqueue(1000)
walk = sum_of_squares.enqueue(100)
print(f"imported {rows.result(timeout=60)} rows")
print(f"sum of squares: {walk.result(timeout=60)}")
