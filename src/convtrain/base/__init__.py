"""The bottom layer, importing nothing of convtrain: the error types, atomic file writes, the version,
the one figure saver (figures.py) and the one HTML page writer (html_page.py)."""
